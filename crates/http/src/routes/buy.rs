//! Payment form pages for buyers: choose a plan, pay at the provider, see the key.
//! Server-rendered HTML with no external assets; the only script copies a key.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use keyturn_app::{AppError, CheckoutOutcome, ProviderError, MAX_FORM_QUANTITY};
use keyturn_core::branding::Branding;
use keyturn_core::payment::PaymentForm;
use sha2::{Digest, Sha256};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::extract::Form;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/buy/{form}", get(show).post(submit))
        .route("/buy/{form}/done", get(done))
        .route("/buy/{form}/paypal/return", get(paypal_return))
        // Every page sets its own policy (its style sheet carries the branding's colours);
        // this one covers any response that does not.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
        ))
}

/// What a page may load: its one style sheet (with the branding's colours) and one script,
/// both inline and named by hash, the seller's logo (an https address, [`Branding::parse`]),
/// and nothing else (no other script, no frames, no plugins).
fn page_policy(style: &str, logo: bool) -> HeaderValue {
    let hash = |text: &str| BASE64.encode(Sha256::digest(text.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; \
         img-src {}; frame-ancestors 'none'; base-uri 'none'",
        hash(style),
        hash(COPY_SCRIPT),
        if logo { "https:" } else { "'none'" }
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
}

/// A rendered buy page and the policy that lets it load what it shows.
pub(crate) struct BuyPage {
    html: String,
    policy: HeaderValue,
}

impl IntoResponse for BuyPage {
    fn into_response(self) -> Response {
        let mut r = Html(self.html).into_response();
        r.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, self.policy);
        r
    }
}

/// The branding's colours: the accent behind the header and buttons with text that stays
/// readable on it, and links in the accent where it is readable on white.
fn theme(b: &Branding) -> String {
    format!(
        ".brand,button{{background:{a};color:{t}}}a{{color:{l}}}.offer:focus-within,button:focus{{outline-color:{l}}}",
        a = b.accent(),
        t = b.accent_text(),
        l = b.link_colour(),
    )
}

/// The header with the seller's logo or name, when there is branding.
fn brand_header(b: &Branding) -> String {
    match (&b.logo_url, b.display_name.is_empty()) {
        (Some(logo), _) => format!(
            "<header class=\"brand\"><img src=\"{}\" alt=\"{}\" height=\"40\"></header>",
            esc(logo),
            esc(&b.display_name)
        ),
        (None, false) => format!(
            "<header class=\"brand\"><span class=\"seller\">{}</span></header>",
            esc(&b.display_name)
        ),
        (None, true) => String::new(),
    }
}

/// The footer: where to ask, and the seller's policies.
fn brand_footer(b: &Branding) -> String {
    let mut parts = Vec::new();
    if let Some(support) = &b.support_email {
        parts.push(format!(
            "Questions? <a href=\"mailto:{s}\">{s}</a>",
            s = esc(support)
        ));
    }
    let links: Vec<String> = b
        .links()
        .into_iter()
        .map(|(label, url)| format!("<a href=\"{}\">{label}</a>", esc(url)))
        .collect();
    if !links.is_empty() {
        parts.push(format!(
            "<nav aria-label=\"Policies\">{}</nav>",
            links.join(" · ")
        ));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!("<footer>{}</footer>", parts.join(""))
}

/// Copies a key to the clipboard; the one script a page runs.
const COPY_SCRIPT: &str = "document.querySelectorAll('[data-copy]').forEach(function(b){b.addEventListener('click',function(){\
navigator.clipboard.writeText(document.getElementById(b.dataset.copy).textContent).then(function(){b.textContent='Copied';});});});";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}\
main{max-width:34rem;margin:0 auto;padding:1.5rem}h1{font-size:1.6rem;margin:.5rem 0 1rem}\
form,.card{background:#fff;border:1px solid #d8dde3;border-radius:.75rem;padding:1.25rem}\
fieldset{border:0;padding:0;margin:0 0 1rem}legend{font-weight:600;margin-bottom:.5rem}\
.offer{display:flex;gap:.75rem;align-items:center;border:1px solid #d8dde3;border-radius:.5rem;padding:.75rem;margin-bottom:.5rem}\
.offer:focus-within{outline:3px solid #2563eb}.price{margin-left:auto;font-weight:600}\
label.field{display:block;font-weight:600;margin:.75rem 0 .25rem}input[type=text],input[type=email],input[type=number]{width:100%;box-sizing:border-box;padding:.6rem;border:1px solid #aab3bd;border-radius:.4rem;font-size:1rem}\
button{margin-top:1rem;width:100%;padding:.8rem;border:0;border-radius:.5rem;background:#1d4ed8;color:#fff;font-size:1.05rem;font-weight:600;cursor:pointer}\
button:focus{outline:3px solid #93c5fd}.error{background:#fde8e8;border:1px solid #f5a3a3;color:#8a1c1c;padding:.75rem;border-radius:.5rem;margin-bottom:1rem}\
.key{display:flex;gap:.5rem;align-items:center;margin:.5rem 0}.key code{flex:1;font-size:1.1rem;background:#eef2f7;padding:.6rem;border-radius:.4rem;overflow-wrap:normal;word-break:normal}\
.key code .g{white-space:nowrap}.key button{width:auto;margin:0;padding:.6rem .9rem}\
.brand{padding:.75rem max(1.5rem,calc((100% - 34rem) / 2));min-height:2.5rem;display:flex;align-items:center}.brand img{height:40px;max-width:60vw;object-fit:contain}.seller{font-size:1.25rem;font-weight:700}\
.about{white-space:pre-line;margin:0 0 1rem}.tax,.processor{color:#4b5563;font-size:.9rem;margin:.25rem 0}\
footer{max-width:34rem;margin:0 auto;padding:0 1.5rem 2rem;color:#4b5563;font-size:.9rem}footer nav{margin-top:.25rem}footer a{margin-right:.25rem}";

fn page(b: &Branding, title: &str, head_extra: &str, body: &str) -> BuyPage {
    let style = format!("{STYLE}{}", theme(b));
    let title = if b.display_name.is_empty() {
        esc(title)
    } else {
        format!("{} · {}", esc(title), esc(&b.display_name))
    };
    BuyPage {
        html: format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{head_extra}\
             <title>{title}</title><style>{style}</style></head><body>{header}\
             <main>{body}</main>{footer}</body></html>",
            header = brand_header(b),
            footer = brand_footer(b),
        ),
        policy: page_policy(&style, b.logo_url.is_some()),
    }
}

/// A license key whose groups never break inside on a narrow screen: each group is kept whole
/// and a line may break only between groups. The text is the key as it is (for copying).
fn key_groups(key: &str) -> String {
    let groups: Vec<&str> = key.split_inclusive('-').collect();
    groups
        .iter()
        .map(|g| format!("<span class=\"g\">{}</span>", esc(g)))
        .collect::<Vec<_>>()
        .join("<wbr>")
}

/// Who takes the money on this form.
fn processors(form: &PaymentForm, paypal: bool) -> Option<&'static str> {
    let stripe = form.offers.iter().any(|o| !o.stripe_price_id.is_empty());
    match (stripe, paypal) {
        (true, true) => Some("Payments are processed securely by Stripe or PayPal."),
        (true, false) => Some("Payments are processed securely by Stripe."),
        (false, true) => Some("Payments are processed securely by PayPal."),
        (false, false) => None,
    }
}

/// An offer's price as the seller wrote it, with its currency when the price does not name it.
fn price_text(o: &keyturn_core::payment::Offer) -> String {
    match &o.currency {
        Some(c) if !o.price.contains(c.as_str()) => format!("{} {c}", o.price),
        _ => o.price.clone(),
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            &Branding::default(),
            "Not found",
            "",
            "<h1>Not found</h1><p>This page does not exist.</p>",
        ),
    )
        .into_response()
}

/// A page for a failed lookup: "not found" only when the thing is missing; while the database is
/// away the buyer (and any monitor) sees 503 with `Retry-After`, never a page that claims the
/// form does not exist.
fn failure(e: AppError) -> Response {
    let e = ApiError::from(e);
    if e.status() == StatusCode::NOT_FOUND {
        return not_found();
    }
    let mut response = (
        e.status(),
        page(
            &Branding::default(),
            "Please try again",
            "",
            "<h1>Please try again</h1><p>This page cannot be shown right now. Please try again in a minute.</p>",
        ),
    )
        .into_response();
    if let Some(secs) = e.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// What the buyer typed, shown again when something needs fixing.
#[derive(Default, serde::Deserialize)]
struct Entered {
    offer: Option<String>,
    quantity: Option<String>,
    name: Option<String>,
    email: Option<String>,
    /// `paypal` when the buyer chose PayPal; Stripe otherwise.
    provider: Option<String>,
}

fn render_form(
    b: &Branding,
    form: &PaymentForm,
    entered: &Entered,
    error: Option<&str>,
    paypal: bool,
) -> BuyPage {
    let chosen: usize = entered
        .offer
        .as_deref()
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let offers: String = form
        .offers
        .iter()
        .enumerate()
        .map(|(i, o)| {
            format!(
                "<label class=\"offer\"><input type=\"radio\" name=\"offer\" value=\"{i}\"{}> <span>{}</span><span class=\"price\">{}</span></label>",
                if i == chosen { " checked" } else { "" },
                esc(&o.label),
                esc(&price_text(o))
            )
        })
        .collect();
    let error = error
        .map(|e| format!("<div class=\"error\" role=\"alert\">{}</div>", esc(e)))
        .unwrap_or_default();
    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    let body = format!(
        "<h1>{name}</h1>{about}{error}<form method=\"post\" action=\"/buy/{id}\">\
         <fieldset><legend>Choose a plan</legend>{offers}{tax}</fieldset>\
         <label class=\"field\" for=\"quantity\">Quantity</label>\
         <input id=\"quantity\" name=\"quantity\" type=\"number\" min=\"1\" max=\"{max}\" value=\"{quantity}\" required>\
         <label class=\"field\" for=\"name\">Your name</label>\
         <input id=\"name\" name=\"name\" type=\"text\" autocomplete=\"name\" value=\"{bname}\" required>\
         <label class=\"field\" for=\"email\">Email (your key is sent here)</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" value=\"{email}\" required>\
         <button type=\"submit\">Continue to payment</button>{paypal}{processor}</form>",
        name = esc(&form.name),
        about = if form.description.is_empty() {
            String::new()
        } else {
            format!("<p class=\"about\">{}</p>", esc(&form.description))
        },
        tax = if form.tax_note.is_empty() {
            String::new()
        } else {
            format!("<p class=\"tax\">{}</p>", esc(&form.tax_note))
        },
        processor = processors(form, paypal)
            .map(|p| format!("<p class=\"processor\">{p}</p>"))
            .unwrap_or_default(),
        id = esc(&form.public_id),
        max = MAX_FORM_QUANTITY,
        quantity = entered.quantity.as_deref().map(esc).unwrap_or_else(|| "1".into()),
        bname = value(&entered.name),
        email = value(&entered.email),
        paypal = if paypal {
            "<button type=\"submit\" name=\"provider\" value=\"paypal\">Pay with PayPal</button>"
        } else {
            ""
        },
    );
    page(b, &form.name, "", &body)
}

/// The seller's branding for a page; a page without it still works (the branding is only
/// looks), so a failed read shows none.
async fn branding(state: &AppState) -> Branding {
    state.app.public_branding().await.unwrap_or_default()
}

async fn show(
    State(state): State<AppState>,
    axum::extract::Path(form): axum::extract::Path<String>,
) -> Response {
    match state.app.public_form(&form).await {
        Ok(form) => render_form(
            &branding(&state).await,
            &form,
            &Entered::default(),
            None,
            offers_paypal(&state, &form),
        )
        .into_response(),
        Err(e) => failure(e),
    }
}

fn offers_paypal(state: &AppState, form: &PaymentForm) -> bool {
    state.gateways.paypal.is_some() && form.offers.iter().any(|o| o.paypal_amount.is_some())
}

/// The address buyers reach this server at, for the provider's return links: configured, never
/// taken from the request, whose Host header anyone can set (a return link to their own site).
fn public_base(state: &AppState) -> Option<&str> {
    state.settings.public_url.as_deref()
}

async fn submit(
    State(state): State<AppState>,
    axum::extract::Path(form_id): axum::extract::Path<String>,
    Form(entered): Form<Entered>,
) -> Response {
    let form = match state.app.public_form(&form_id).await {
        Ok(form) => form,
        Err(e) => return failure(e),
    };
    let paypal = offers_paypal(&state, &form);
    let brand = branding(&state).await;
    let again = |status: StatusCode, message: &str, entered: &Entered| {
        (
            status,
            render_form(&brand, &form, entered, Some(message), paypal),
        )
            .into_response()
    };
    let offer = entered
        .offer
        .as_deref()
        .and_then(|o| o.parse::<usize>().ok());
    let quantity = entered
        .quantity
        .as_deref()
        .and_then(|q| q.trim().parse::<i64>().ok());
    let (Some(offer), Some(quantity)) = (offer, quantity) else {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please choose a plan and a quantity.",
            &entered,
        );
    };
    let plan = match state
        .app
        .plan_checkout(
            &form_id,
            offer,
            quantity,
            entered.name.as_deref().unwrap_or(""),
            entered.email.as_deref().unwrap_or(""),
        )
        .await
    {
        Ok(p) => p,
        Err(AppError::Invalid(e)) => {
            let message = match e.field {
                "email" => "Please enter a valid email address.".to_owned(),
                "name" => "Please enter your name.".to_owned(),
                _ => e.message.clone(),
            };
            return again(StatusCode::UNPROCESSABLE_ENTITY, &message, &entered);
        }
        Err(e) => return failure(e),
    };
    let Some(base) = public_base(&state) else {
        tracing::warn!("a checkout was refused: KEYTURN_PUBLIC_URL is not set");
        return again(
            StatusCode::SERVICE_UNAVAILABLE,
            "This form cannot take payments yet: the server's public address (KEYTURN_PUBLIC_URL) is not configured.",
            &entered,
        );
    };
    if entered.provider.as_deref() == Some("paypal") {
        let Some(pp) = state.gateways.paypal.as_ref() else {
            return again(
                StatusCode::SERVICE_UNAVAILABLE,
                "PayPal is not available.",
                &entered,
            );
        };
        return match state.app.start_checkout(pp, &plan, base).await {
            Ok(url) => Redirect::to(&url).into_response(),
            Err(AppError::Provider(ProviderError::Unsupported(_))) => again(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This plan cannot be paid with PayPal.",
                &entered,
            ),
            Err(e) => {
                tracing::warn!(error = %e, "PayPal checkout could not be started");
                again(
                    StatusCode::BAD_GATEWAY,
                    "PayPal could not be reached. Please try again.",
                    &entered,
                )
            }
        };
    }
    if plan.offer.stripe_price_id.is_empty() {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "This plan is paid with PayPal.",
            &entered,
        );
    }
    let Some(stripe) = state.gateways.stripe.as_ref() else {
        return again(
            StatusCode::SERVICE_UNAVAILABLE,
            "Payments are not available right now.",
            &entered,
        );
    };
    match state.app.start_checkout(stripe, &plan, base).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "checkout could not be started");
            again(
                StatusCode::BAD_GATEWAY,
                "The payment provider could not be reached. Please try again.",
                &entered,
            )
        }
    }
}

/// The done page's link into the customer portal: under the configured public address, or on
/// this server (the page is served by it).
fn portal_link(state: &AppState) -> String {
    format!(
        "{}/portal",
        public_base(state).unwrap_or("").trim_end_matches('/')
    )
}

fn render_done(b: &Branding, o: &CheckoutOutcome, portal: &str) -> BuyPage {
    if o.keys.is_empty() {
        let body = "<h1>Confirming your payment…</h1><div class=\"card\" role=\"status\" aria-live=\"polite\">\
                    <p>Your payment is being confirmed. This page refreshes by itself; your key appears here in a moment.</p></div>";
        return page(
            b,
            "Confirming your payment",
            "<meta http-equiv=\"refresh\" content=\"2\">",
            body,
        );
    }
    let keys: String = o
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "<div class=\"key\"><code id=\"key-{i}\">{k}</code><button type=\"button\" data-copy=\"key-{i}\" aria-label=\"Copy license key {n}\">Copy</button></div>",
                k = key_groups(k),
                n = i + 1
            )
        })
        .collect();
    let body = format!(
        "<h1>{name}</h1><div class=\"card\"><p>{text}</p><h2>Your license key{plural}</h2>{keys}\
         <p>Sent to {email}.</p><p><a href=\"{portal}\">See your licenses and billing in the customer portal</a></p>\
         </div><script>{COPY_SCRIPT}</script>",
        name = esc(&o.form.name),
        text = esc(&o.form.success_text),
        plural = if o.keys.len() > 1 { "s" } else { "" },
        email = esc(&o.checkout.buyer_email),
        portal = esc(portal),
    );
    page(b, &o.form.name, "", &body)
}

async fn done(
    State(state): State<AppState>,
    axum::extract::Path(form): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(session) = q.get("session") else {
        return not_found();
    };
    match state.app.checkout_outcome(&form, session).await {
        Ok(outcome) => {
            render_done(&branding(&state).await, &outcome, &portal_link(&state)).into_response()
        }
        Err(e) => failure(e),
    }
}

/// PayPal sends the buyer back here after approval: capture, then show the outcome.
async fn paypal_return(
    State(state): State<AppState>,
    axum::extract::Path(form): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (Some(order), Some(pp)) = (q.get("token"), state.gateways.paypal.as_ref()) else {
        return not_found();
    };
    // Only an order started on this form is captured here.
    let outcome = match state.app.checkout_outcome(&form, order).await {
        Ok(outcome) => outcome,
        Err(e) => return failure(e),
    };
    match state.app.complete_checkout(pp, &outcome.checkout).await {
        Ok(_) => Redirect::to(&format!("/buy/{form}/done?session={order}")).into_response(),
        Err(AppError::Invalid(e)) => {
            // PayPal took a payment that is not what was ordered: recorded as failed, no key.
            tracing::warn!(error = %e, "PayPal capture does not match its order");
            let body = "<h1>Payment not completed</h1><div class=\"card\" role=\"alert\"><p>The payment PayPal \
                        took does not match this order, so no key was issued. Please contact the seller.</p></div>";
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                page(&branding(&state).await, "Payment not completed", "", body),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "PayPal capture failed");
            let body = "<h1>Payment not completed</h1><div class=\"card\" role=\"alert\"><p>PayPal did not confirm the payment. \
                        Nothing was charged by this page; please try again.</p></div>";
            (
                StatusCode::BAD_GATEWAY,
                page(&branding(&state).await, "Payment not completed", "", body),
            )
                .into_response()
        }
    }
}
