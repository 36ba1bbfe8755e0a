//! The money side as the console shows it: payments, provider events, subscriptions and the
//! mail outbox, and the three things done from there — retry a failed provider event, sync
//! missed events from a provider, send a failed mail again.
//!
//! Invariants:
//!
//! * Everything here spans products, so only unrestricted users reach it: reading needs
//!   `payments:read` (the outbox also `customers:read`: it lists customers' addresses, never the
//!   bodies, which hold keys); acting needs `payments:write`.
//! * A retry applies the event Keyturn stored when it arrived — the payload, byte for byte,
//!   translated again by its provider's adapter — through the same pipeline as a webhook
//!   delivery ([`App::apply_provider_events`]), so it applies at most once however often or
//!   concurrently it is retried, and a retry that fails again is recorded like a delivery
//!   that failed. Only a failed event is retried.
//! * Every action is written to the console's audit log under the user, after what it did
//!   committed, with its outcome.
//! * Lists are keyset pages filtered in the database ([`keyturn_store::EventFilter`] etc.);
//!   cursors are opaque texts this module writes and reads back.

use chrono::{DateTime, TimeZone, Utc};
use keyturn_core::payment::{Payment, PaymentStatus, ProviderEvent, Subscription};
use keyturn_core::provider::{EventEnvelope, EventOutcome, ProviderError, ProviderEventStatus};
use keyturn_core::{MailState, OutboxMail, Permission};
use keyturn_store::{EventFilter, EventPosition, MailFilter, PaymentFilter, SubscriptionFilter};
use serde_json::{json, Value};

use crate::{now, App, AppError, Entity, Page, PageRequest, PaymentGateway, Principal, Result};
use crate::{Listed, SyncReport, MAX_PAGE};

/// Rows per page of the money lists.
pub const LEDGER_PAGE: i64 = 50;

/// Translates a provider's stored notification again, as its adapter translated it when it
/// arrived. The app cannot reach the adapters (they are `keyturn-providers`', which sits beside
/// it), so the HTTP layer, where both meet, hands one in, as it does with [`PaymentGateway`].
pub trait EventTranslator: Send + Sync {
    /// The events in `payload`, a notification of `provider` that was verified when it arrived
    /// and stored; `created` is the time its event was recorded with.
    fn translate(
        &self,
        provider: &str,
        payload: &str,
        created: DateTime<Utc>,
    ) -> std::result::Result<Vec<EventEnvelope>, ProviderError>;

    /// The provider's API, for a sale whose event does not say what it bought.
    fn gateway(&self, provider: &str) -> Option<&dyn PaymentGateway>;
}

/// What a retry came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Applied now; what it did.
    Applied(String),
    /// A type Keyturn does not act on.
    Ignored,
    /// Another delivery or retry applied it first: nothing changed.
    Duplicate,
    /// It failed again, recorded with this reason.
    Failed(String),
}

impl RetryOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            RetryOutcome::Applied(_) => "applied",
            RetryOutcome::Ignored => "ignored",
            RetryOutcome::Duplicate => "duplicate",
            RetryOutcome::Failed(_) => "failed",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PaymentListQuery {
    pub provider: Option<String>,
    pub status: Option<PaymentStatus>,
    pub page: PageRequest,
}

#[derive(Debug, Clone, Default)]
pub struct EventListQuery {
    pub provider: Option<String>,
    pub status: Option<ProviderEventStatus>,
    pub event_type: Option<String>,
    pub page: PageRequest,
}

#[derive(Debug, Clone, Default)]
pub struct SubscriptionListQuery {
    pub provider: Option<String>,
    pub status: Option<String>,
    pub page: PageRequest,
}

#[derive(Debug, Clone, Default)]
pub struct MailListQuery {
    pub state: Option<MailState>,
    pub page: PageRequest,
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn bad_cursor() -> AppError {
    AppError::invalid("cursor", "is not a cursor this server returned")
}

/// An event list's cursor: `<ms>-<provider hex>-<event id hex>`.
fn event_cursor(e: &ProviderEvent) -> String {
    format!(
        "{}-{}-{}",
        e.created.timestamp_millis(),
        hex(&e.provider),
        hex(&e.event_id)
    )
}

fn parse_event_cursor(text: &str) -> Result<EventPosition> {
    let mut parts = text.splitn(3, '-');
    let (Some(ms), Some(provider), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad_cursor());
    };
    let created = ms
        .parse::<i64>()
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .ok_or_else(bad_cursor)?;
    Ok(EventPosition {
        created,
        provider: unhex(provider).ok_or_else(bad_cursor)?,
        event_id: unhex(id).ok_or_else(bad_cursor)?,
    })
}

/// A subscription list's cursor: `<provider hex>-<subscription id hex>`.
fn subscription_cursor(s: &Subscription) -> String {
    format!("{}-{}", hex(&s.provider), hex(&s.subscription_id))
}

fn parse_subscription_cursor(text: &str) -> Result<(String, String)> {
    let (provider, id) = text.split_once('-').ok_or_else(bad_cursor)?;
    Ok((
        unhex(provider).ok_or_else(bad_cursor)?,
        unhex(id).ok_or_else(bad_cursor)?,
    ))
}

/// The cursor text and page size a page request asks for.
fn page_of(page: &PageRequest) -> Result<(Option<&str>, i64)> {
    let limit = page.limit.unwrap_or(LEDGER_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let cursor = page
        .cursor
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    Ok((cursor, limit))
}

/// A page from up to `limit + 1` rows, the cursor made by `cursor` from its last row.
fn page_from<T>(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(cursor) } else { None };
    Page {
        data: rows,
        next_cursor,
    }
}

/// A filter text as given: trimmed, `None` when empty, on one line and of a sane length.
fn filter_text(field: &'static str, text: Option<&str>) -> Result<Option<String>> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => Ok(Some(keyturn_core::names::display_name(field, t)?)),
    }
}

impl App {
    /// Payments, newest first, filtered by provider and status, with their customers.
    pub async fn payment_list(
        &self,
        principal: &Principal,
        q: &PaymentListQuery,
    ) -> Result<Listed<Payment>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        let (cursor, limit) = page_of(&q.page)?;
        let before = cursor
            .map(|c| c.parse::<i64>().map_err(|_| bad_cursor()))
            .transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .payment_list(&PaymentFilter {
                provider: filter_text("provider", q.provider.as_deref())?,
                status: q.status,
                customer_id: None,
                before,
                limit: limit + 1,
            })
            .await?;
        let page = page_from(rows, limit, |p| p.id.to_string());
        let ids = page.data.iter().filter_map(|p| p.customer_id).collect();
        let customers = self.named_customers(principal, ids).await?;
        Ok(Listed { page, customers })
    }

    /// Provider events, newest first, filtered by provider, status and type.
    pub async fn provider_event_list(
        &self,
        principal: &Principal,
        q: &EventListQuery,
    ) -> Result<Page<ProviderEvent>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        let (cursor, limit) = page_of(&q.page)?;
        let rows = self
            .store
            .read()
            .await?
            .provider_event_list(&EventFilter {
                provider: filter_text("provider", q.provider.as_deref())?,
                status: q.status,
                event_type: filter_text("type", q.event_type.as_deref())?,
                before: cursor.map(parse_event_cursor).transpose()?,
                limit: limit + 1,
            })
            .await?;
        Ok(page_from(rows, limit, event_cursor))
    }

    /// Subscriptions as last reported, by provider and id, filtered by provider and status,
    /// with their customers.
    pub async fn subscription_list(
        &self,
        principal: &Principal,
        q: &SubscriptionListQuery,
    ) -> Result<Listed<Subscription>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        let (cursor, limit) = page_of(&q.page)?;
        let rows = self
            .store
            .read()
            .await?
            .subscription_list(&SubscriptionFilter {
                provider: filter_text("provider", q.provider.as_deref())?,
                status: filter_text("status", q.status.as_deref())?,
                after: cursor.map(parse_subscription_cursor).transpose()?,
                limit: limit + 1,
            })
            .await?;
        let page = page_from(rows, limit, subscription_cursor);
        let ids = page.data.iter().filter_map(|s| s.customer_id).collect();
        let customers = self.named_customers(principal, ids).await?;
        Ok(Listed { page, customers })
    }

    /// The outbox, newest first, filtered by state; without the messages' bodies.
    pub async fn outbox(
        &self,
        principal: &Principal,
        q: &MailListQuery,
    ) -> Result<Page<OutboxMail>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        principal.require(Permission::CustomersRead)?;
        let (cursor, limit) = page_of(&q.page)?;
        let before = cursor
            .map(|c| c.parse::<i64>().map_err(|_| bad_cursor()))
            .transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .mail_list(&MailFilter {
                state: q.state,
                before,
                limit: limit + 1,
            })
            .await?;
        Ok(page_from(rows, limit, |m| m.id.to_string()))
    }

    /// Puts a mail whose last attempt failed back in the queue: the sender takes it at its
    /// next pass. Its attempts and last error stay until it is sent.
    pub async fn resend_mail(&self, principal: &Principal, id: i64) -> Result<OutboxMail> {
        principal.require_unrestricted(Permission::PaymentsWrite)?;
        let at = now();
        let mut session = self.store.write().await?;
        let mail = session
            .outbox_mail(id)
            .await?
            .ok_or(AppError::NotFound(Entity::OutboxMail))?;
        if !session.requeue_mail(id, at).await? {
            return Err(AppError::Conflict(format!(
                "only a mail whose last attempt failed is sent again; this one is {}",
                mail.state().as_str()
            )));
        }
        session
            .insert_console_event(
                &principal.actor.label(),
                "mail_requeued",
                &json!({"mail_id": id, "to": mail.to, "attempts": mail.attempts}),
                at,
            )
            .await?;
        session.commit().await?;
        Ok(mail)
    }

    /// Applies a failed provider event again from its stored payload, through the pipeline,
    /// and says what it came to. See the module's invariants.
    pub async fn retry_provider_event(
        &self,
        principal: &Principal,
        provider: &str,
        event_id: &str,
        translator: &dyn EventTranslator,
    ) -> Result<RetryOutcome> {
        principal.require_unrestricted(Permission::PaymentsWrite)?;
        let (event, payload) = {
            let mut session = self.store.read().await?;
            let event = session
                .provider_event(provider, event_id)
                .await?
                .ok_or(AppError::NotFound(Entity::ProviderEvent))?;
            let payload = session
                .provider_event_payload(provider, event_id)
                .await?
                .ok_or(AppError::NotFound(Entity::ProviderEvent))?;
            (event, payload)
        };
        if event.status != ProviderEventStatus::Failed {
            return Err(AppError::Conflict(format!(
                "only a failed event is retried; this one is {}",
                event.status.as_str()
            )));
        }
        let envelope = translator
            .translate(provider, &payload, event.created)?
            .into_iter()
            .find(|e| e.provider == event.provider && e.event_id == event.event_id)
            .ok_or_else(|| {
                AppError::Conflict(
                    "the stored payload does not hold this event again: only events that \
                     arrived as webhooks are retried here"
                        .into(),
                )
            })?;
        let applied = self
            .apply_provider_events(translator.gateway(provider), vec![envelope])
            .await;
        let outcome = match applied {
            Ok(outcomes) => match outcomes.into_iter().next() {
                Some(EventOutcome::Applied(detail)) => RetryOutcome::Applied(detail),
                Some(EventOutcome::Ignored) => RetryOutcome::Ignored,
                Some(EventOutcome::Duplicate) | None => RetryOutcome::Duplicate,
            },
            // The database failing is not the event failing: nothing was recorded.
            Err(AppError::Store(e)) => return Err(AppError::Store(e)),
            Err(e) => RetryOutcome::Failed(e.to_string()),
        };
        let detail = match &outcome {
            RetryOutcome::Applied(d) | RetryOutcome::Failed(d) => Value::String(d.clone()),
            _ => Value::Null,
        };
        self.console_audit(
            principal,
            "provider_event_retried",
            json!({"provider": provider, "event_id": event_id,
                   "outcome": outcome.as_str(), "detail": detail}),
        )
        .await?;
        Ok(outcome)
    }

    /// Fetches the events a provider reported that were missed here and applies them
    /// ([`App::sync`]), for a user who may change payments; audited with its counts.
    pub async fn sync_payments(
        &self,
        principal: &Principal,
        gateway: &dyn PaymentGateway,
    ) -> Result<SyncReport> {
        principal.require_unrestricted(Permission::PaymentsWrite)?;
        let report = self.sync(gateway).await?;
        self.console_audit(
            principal,
            "payments_synced",
            json!({"provider": gateway.provider(), "fetched": report.fetched,
                   "applied": report.applied, "ignored": report.ignored,
                   "duplicates": report.duplicates, "failed": report.failed}),
        )
        .await?;
        Ok(report)
    }

    /// Writes one entry of the console's audit log in a transaction of its own.
    async fn console_audit(
        &self,
        principal: &Principal,
        action: &str,
        details: Value,
    ) -> Result<()> {
        let mut session = self.store.write().await?;
        session
            .insert_console_event(&principal.actor.label(), action, &details, now())
            .await?;
        Ok(session.commit().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_whatever_the_ids_hold() {
        let e = ProviderEvent {
            provider: "stripe".into(),
            event_id: "evt-1:2/3".into(),
            event_type: "x".into(),
            created: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            received: Utc::now(),
            status: ProviderEventStatus::Failed,
            detail: String::new(),
            attempts: 1,
            payload: None,
        };
        let back = parse_event_cursor(&event_cursor(&e)).unwrap();
        assert_eq!(back.created, e.created);
        assert_eq!(back.provider, "stripe");
        assert_eq!(back.event_id, "evt-1:2/3");
        for bad in ["", "12", "x-73-74", "12-7-74", "12-zz-74"] {
            assert!(parse_event_cursor(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_subscription_cursor(&format!("{}-{}", hex("paddle"), hex("sub-9"))).unwrap(),
            ("paddle".to_owned(), "sub-9".to_owned())
        );
        assert!(parse_subscription_cursor("nothex").is_err());
    }

    #[test]
    fn pages_keep_one_row_back_to_say_more_exist() {
        let p = page_from(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(p.data, vec![1, 2]);
        assert_eq!(p.next_cursor.as_deref(), Some("2"));
        let p = page_from(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(p.next_cursor, None);
    }
}
