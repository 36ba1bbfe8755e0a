//! Buyers: their customer record (found by provider id or email, filled in by each event), and
//! the mail that hands them new keys.

use keyturn_core::payment::Buyer;
use keyturn_core::{Email, License};
use keyturn_store::Session;

use crate::Result;

use super::Ctx;

/// The buyer's customer record: found by provider id, then by email, else created. Events
/// describe a buyer more or less fully (an older invoice has no name), so each fills in what the
/// record still lacks, whatever order they arrive in.
pub(super) async fn customer(s: &mut Session, ctx: &Ctx<'_>, buyer: &Buyer) -> Result<Option<i64>> {
    let email = buyer
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .map(Email::into_string);
    let name: Option<String> = buyer
        .name
        .as_deref()
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let mut found = match &buyer.provider_customer_id {
        Some(external) => s.customer_by_provider_id(ctx.provider, external).await?,
        None => None,
    };
    if found.is_none() {
        if let Some(e) = &email {
            found = s.customer_by_email(e).await?;
        }
    }
    let id = match found {
        Some(id) => {
            if let Some(mut c) = s.customer(id).await? {
                let named_by_email = c.email.is_some() && Some(&c.name) == c.email.as_ref();
                let mut changed = false;
                if c.email.is_none() && email.is_some() {
                    c.email = email.clone();
                    changed = true;
                }
                if let Some(n) = name.as_ref().filter(|_| named_by_email) {
                    c.name = n.clone();
                    changed = true;
                }
                if changed {
                    crate::customers::save_customer(s, &c, ctx.at).await?;
                }
            }
            id
        }
        None => {
            // A bare provider id says nothing about the buyer: wait for an event that does.
            let Some(display) = name.clone().or(email.clone()) else {
                return Ok(None);
            };
            crate::customers::insert_customer(s, &display, email.as_deref(), None, ctx.at)
                .await?
                .id
        }
    };
    if let Some(external) = &buyer.provider_customer_id {
        s.set_customer_provider_id(id, ctx.provider, external)
            .await?;
    }
    Ok(Some(id))
}

pub(super) async fn product_name(s: &mut Session, product_id: i64) -> Result<String> {
    Ok(s.product(product_id)
        .await?
        .map(|p| p.name)
        .unwrap_or_else(|| "your software".into()))
}

/// A payment form's mail, when the sale was a checkout started on one.
pub(super) async fn form_template(
    s: &mut Session,
    order: &str,
) -> Result<Option<(String, String)>> {
    let Some(checkout) = s.checkout(order).await? else {
        return Ok(None);
    };
    Ok(s.form(checkout.form_id)
        .await?
        .map(|f| (f.email_subject, f.email_body)))
}

/// Mails a new subscription license to the buyer when the integration asks for it. An event
/// that does not describe the buyer mails whom the license's customer record names.
pub(super) async fn notify(
    s: &mut Session,
    ctx: &Ctx<'_>,
    buyer: &Buyer,
    license: &License,
    order: Option<&str>,
) -> Result<String> {
    if !ctx.notify_buyer {
        return Ok(String::new());
    }
    let known = match (&buyer.email, license.customer_id) {
        (None, Some(id)) => s.customer(id).await?,
        _ => None,
    };
    let (to, name) = match &known {
        Some(c) => (c.email.as_deref(), Some(c.name.as_str())),
        None => (buyer.email.as_deref(), buyer.name.as_deref()),
    };
    let product = product_name(s, license.product_id).await?;
    let template = match order {
        Some(o) => form_template(s, o).await?,
        None => None,
    };
    let mail = crate::mail::KeyMail {
        to,
        name,
        product: &product,
        product_id: license.product_id,
        template,
        portal: ctx.portal,
    };
    let queued =
        crate::mail::queue_keys(s, mail, std::slice::from_ref(&license.key), ctx.at).await?;
    Ok(if queued {
        "; key mail queued".into()
    } else {
        String::new()
    })
}
