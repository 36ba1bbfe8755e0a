//! The console's dashboard: what happened over the last 30 or 90 days, what is coming, and
//! what needs someone's attention.
//!
//! Invariants:
//!
//! * Everything is counted by the database, grouped by day and bounded by the window
//!   (`keyturn_store`'s dashboard queries), so the page costs the same with a thousand
//!   licenses or a million.
//! * A user limited to a product sees that product's numbers only; money and the attention
//!   panel span products, so they are shown to unrestricted users who may read payments, as
//!   on the API.
//! * Days are UTC days of the app's clock ([`keyturn_core::dashboard`]).

use keyturn_core::dashboard::{day_number, start_of_day, DailySeries, Window};
use keyturn_core::Permission;
use keyturn_store::{Attention, MachineCounts, UsageKind};

use crate::usage::{code_name, CODES};
use crate::{App, Principal, Result};

/// How far ahead the expiry calendar looks, in days.
pub const EXPIRING_DAYS: usize = 30;

/// Revenue in one currency, per day and provider, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revenue {
    pub currency: String,
    pub by_provider: DailySeries,
}

/// Everything the dashboard shows.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub window: Window,
    /// The product the numbers are limited to, if any.
    pub product_scope: Option<i64>,
    /// New licenses per day (one series, `licenses`).
    pub new_licenses: DailySeries,
    /// `None`: not the user's to see.
    pub revenue: Option<Vec<Revenue>>,
    /// Validations per day by result code.
    pub validations: DailySeries,
    /// Activations per day by result code.
    pub activations: DailySeries,
    pub machines: MachineCounts,
    /// Licenses expiring per day over the next [`EXPIRING_DAYS`] days, from today.
    pub expiring: DailySeries,
    /// `None`: not the user's to see.
    pub attention: Option<Attention>,
}

impl App {
    /// The dashboard over `window`, as far as `principal` may see.
    pub async fn dashboard(&self, principal: &Principal, window: Window) -> Result<Dashboard> {
        let product = principal.require_listing(Permission::LicensesRead, None)?;
        principal.require(Permission::ActivationsRead)?;
        let unrestricted_money = principal
            .require_unrestricted(Permission::PaymentsRead)
            .is_ok();
        let now = self.now();
        let today = day_number(now);
        let days = window.days();
        let first_day = today - (days - 1);
        let (from, to) = (start_of_day(first_day), start_of_day(today + 1));
        let span = days as usize;
        let codes: Vec<&str> = CODES.iter().map(|c| code_name(*c)).collect();

        let mut session = self.store.read().await?;
        let created = session
            .licenses_created_per_day(first_day, today, product)
            .await?;
        let new_licenses = DailySeries::from_rows(
            first_day,
            span,
            created
                .into_iter()
                .map(|(d, n)| (d, "licenses".to_owned(), n)),
            &["licenses"],
        );
        let usage =
            |rows: Vec<(i64, String, i64)>| DailySeries::from_rows(first_day, span, rows, &codes);
        let validations = usage(
            session
                .usage_per_day(UsageKind::Validation, first_day, product)
                .await?,
        );
        let activations = usage(
            session
                .usage_per_day(UsageKind::Activation, first_day, product)
                .await?,
        );
        let machines = session.machine_counts(now, from, product).await?;
        let expiring = session
            .licenses_expiring_per_day(now, start_of_day(today + EXPIRING_DAYS as i64), product)
            .await?;
        let expiring = DailySeries::from_rows(
            today,
            EXPIRING_DAYS,
            expiring
                .into_iter()
                .map(|(d, n)| (d, "expiring".to_owned(), n)),
            &["expiring"],
        );
        let (revenue, attention) = if unrestricted_money {
            let rows = session.revenue_per_day(from, to).await?;
            let mut currencies: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
            currencies.sort();
            currencies.dedup();
            let revenue = currencies
                .into_iter()
                .map(|currency| Revenue {
                    by_provider: DailySeries::from_rows(
                        first_day,
                        span,
                        rows.iter()
                            .filter(|r| r.2 == currency)
                            .map(|r| (r.0, r.1.clone(), r.3)),
                        &[],
                    ),
                    currency,
                })
                .collect();
            (Some(revenue), Some(session.attention().await?))
        } else {
            (None, None)
        };
        Ok(Dashboard {
            window,
            product_scope: product,
            new_licenses,
            revenue,
            validations,
            activations,
            machines,
            expiring,
            attention,
        })
    }
}
