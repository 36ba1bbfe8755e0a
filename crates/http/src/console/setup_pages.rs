//! The set-up pages' templates (see [`super::setup`]). Like every console template they
//! escape what they are given, so names, descriptions and texts from the database show as
//! text. Code snippets are built as text and escaped like anything else; the copy buttons
//! are hidden until the first-party script (`/admin/console.js`) shows them, so without it
//! the page still shows every value as selectable text.

use keyturn_app::{
    ConsoleSession, Page, PaymentSetup, ProductKeys, ProviderStatus, MAX_FORM_QUANTITY,
};
use keyturn_core::payment::{
    CancelRule, DunningRule, LicenseUrl, LicenseUrlParams, Offer, OfferMode, PaymentForm,
    QuantityMode,
};
use keyturn_core::{AccessToken, BuyerRules, Permission, Plan, Product};
use maud::{html, Markup};

use super::pages::{day, layout, when};

/// The most offer rows a form page shows (a form offers at most 20 plans).
pub const OFFER_ROWS_MAX: usize = 20;
/// Empty offer rows a form page adds for new offers.
const OFFER_ROWS_NEW: usize = 2;

/// The stores a plan names products of, by the prefix their ids carry in
/// `store_product_ids`, with what the vendor types.
pub const STORES: [(&str, &str); 4] = [
    ("paddle", "Paddle price ids (pri_…)"),
    ("lemonsqueezy", "Lemon Squeezy variant ids"),
    ("fastspring", "FastSpring product paths"),
    ("gumroad", "Gumroad product ids or permalinks"),
];

/// A plan's store product ids, split by store for its form.
pub struct Stores {
    pub by_store: Vec<(&'static str, Vec<String>)>,
    pub other: Vec<String>,
}

impl Stores {
    pub fn of(plan: &Plan) -> Self {
        let mut by_store: Vec<(&'static str, Vec<String>)> =
            STORES.iter().map(|(s, _)| (*s, Vec::new())).collect();
        let mut other = Vec::new();
        for id in &plan.store_product_ids {
            let found = id.split_once(':').and_then(|(store, rest)| {
                by_store
                    .iter_mut()
                    .find(|(s, _)| *s == store)
                    .map(|(_, ids)| (ids, rest))
            });
            match found {
                Some((ids, rest)) => ids.push(rest.to_owned()),
                None => other.push(id.clone()),
            }
        }
        Self { by_store, other }
    }

    fn empty() -> Self {
        Self {
            by_store: STORES.iter().map(|(s, _)| (*s, Vec::new())).collect(),
            other: Vec::new(),
        }
    }
}

/// A new secret for a license URL's page, and the address it is reached at.
pub struct Reveal<'a> {
    pub server: &'a str,
    /// The secret, on the one visit that shows it.
    pub secret: Option<&'a str>,
}

/// What the server is set up with, as the provider page shows it: whether each secret is
/// there, never the secret.
pub struct Configured {
    pub public_url: Option<String>,
    pub stripe_webhook: bool,
    pub stripe_api: bool,
    pub paypal: bool,
    /// Webhook secrets accepted (more than one while rotating).
    pub paddle: usize,
    pub lemonsqueezy: usize,
    pub fastspring: usize,
    pub gumroad: bool,
    pub email_buyers: bool,
}

/// What a redirect after a change says happened (never text from the request).
fn done_message(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "Created.",
        "saved" => "Saved.",
        "revoked" => "Token revoked: it no longer authenticates.",
        "rotated" => "The secret was replaced: the old URL no longer works.",
        "deleted" => "License URL deleted.",
        _ => return None,
    })
}

pub(super) fn notice(done: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = done_message(done) {
            p.notice role="status" { (m) }
        }
    }
}

/// The link to the next page of a listing, when there is one.
pub(super) fn next_page(base: &str, next: Option<&String>) -> Markup {
    let joiner = if base.contains('?') { '&' } else { '?' };
    html! {
        @if let Some(next) = next {
            p { a href={ (base) (joiner) "after=" (next) } { "Next page" } }
        }
    }
}

/// A value shown as text, with a copy button the script shows.
pub(super) fn copyable(id: &str, what: &str, text: &str) -> Markup {
    html! {
        div.copyable {
            pre id=(id) { code { (text) } }
            div.copy-row {
                button.copy type="button" data-copy=(id) hidden { "Copy" span.sr { " " (what) } }
                span.copied id={ (id) "-status" } role="status" {}
            }
        }
    }
}

pub(super) fn csrf(session: &ConsoleSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A one-line text field with its label and an optional hint under the label.
pub(super) fn text_field(
    name: &str,
    label: &str,
    value: &str,
    hint: Option<&str>,
    required: bool,
) -> Markup {
    let hint_id = format!("{name}-hint");
    html! {
        label for=(name) { (label) }
        @if let Some(h) = hint { p.hint id=(hint_id) { (h) } }
        input id=(name) name=(name) type="text" value=(value) maxlength="255" required[required]
            aria-describedby=[hint.map(|_| hint_id.as_str())];
    }
}

fn number_field(name: &str, label: &str, value: Option<i64>, hint: &str) -> Markup {
    let hint_id = format!("{name}-hint");
    html! {
        label for=(name) { (label) }
        p.hint id=(hint_id) { (hint) }
        input id=(name) name=(name) type="number" inputmode="numeric" step="1"
            value=[value] aria-describedby=(hint_id);
    }
}

pub(super) fn text_area(
    name: &str,
    label: &str,
    value: &str,
    hint: Option<&str>,
    rows: u8,
) -> Markup {
    let hint_id = format!("{name}-hint");
    html! {
        label for=(name) { (label) }
        @if let Some(h) = hint { p.hint id=(hint_id) { (h) } }
        textarea id=(name) name=(name) rows=(rows) aria-describedby=[hint.map(|_| hint_id.as_str())] { (value) }
    }
}

pub(super) fn checkbox(name: &str, label: &str, checked: bool) -> Markup {
    html! {
        div.check {
            input id=(name) name=(name) type="checkbox" value="1" checked[checked];
            label for=(name) { (label) }
        }
    }
}

/// A select of fixed choices: (value, label).
fn select(name: &str, label: &str, choices: &[(&str, &str)], selected: &str) -> Markup {
    html! {
        label for=(name) { (label) }
        select id=(name) name=(name) {
            @for (value, text) in choices {
                option value=(value) selected[*value == selected] { (text) }
            }
        }
    }
}

fn may(session: &ConsoleSession, wanted: Permission) -> bool {
    session.principal.holds(wanted)
}

fn may_unrestricted(session: &ConsoleSession, wanted: Permission) -> bool {
    session.principal.require_unrestricted(wanted).is_ok()
}

// Products.

pub fn products(session: &ConsoleSession, found: &Page<Product>, done: Option<&str>) -> Markup {
    layout(
        "Products",
        Some(session),
        html! {
            (notice(done))
            h1 { "Products" }
            @if may_unrestricted(session, Permission::ProductsWrite) {
                p { a.button href="/admin/products/new" { "New product" } }
            }
            @if found.data.is_empty() {
                p { "No product yet." }
            } @else {
                table.stack {
                    caption { "Products, oldest first" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Features" } th scope="col" { "Created" } } }
                    tbody {
                        @for p in &found.data {
                            tr {
                                td data-label="Name" { a href={ "/admin/products/" (p.id) } { (p.name) } }
                                td data-label="Id" { (p.id) }
                                td data-label="Features" { @if p.features.is_empty() { "—" } @else { (p.features.join(", ")) } }
                                td data-label="Created" { (day(p.created)) }
                            }
                        }
                    }
                }
                (next_page("/admin/products", found.next_cursor.as_ref()))
            }
        },
    )
}

/// The form that creates a product (`None`) or edits one.
pub fn product_form(session: &ConsoleSession, product: Option<&Product>) -> Markup {
    let (title, action) = match product {
        Some(p) => (
            format!("Edit {}", p.name),
            format!("/admin/products/{}", p.id),
        ),
        None => ("New product".to_owned(), "/admin/products".to_owned()),
    };
    let text = |f: fn(&Product) -> String| product.map(f).unwrap_or_default();
    layout(
        &title,
        Some(session),
        html! {
            h1 { (title) }
            form.card.wide method="post" action=(action) {
                (csrf(session))
                (text_field("name", "Name", &text(|p| p.name.clone()), None, true))
                (text_area("description", "Description (for the people setting it up; programs never see it)", &text(|p| p.description.clone()), None, 3))
                (text_area("features", "Features, one per line", &text(|p| p.features.join("\n")),
                    Some("Order matters to Cryptolens SDKs: the first eight are F1 to F8."), 5))
                (checkbox("public_notes", "Show licenses' notes to programs", product.is_some_and(|p| p.public_notes)))
                (text_area("public_metadata", "License metadata keys shown to programs, one per line", &text(|p| p.public_metadata.join("\n")), None, 2))
                (checkbox("block_expired_licenses", "Answer expired licenses as blocked on the Cryptolens API", product.is_some_and(|p| p.block_expired_licenses)))
                button type="submit" { @if product.is_some() { "Save product" } @else { "Create product" } }
            }
        },
    )
}

/// The code a program needs, for each SDK: (id, title, text).
fn snippets(server: &str, keys: &ProductKeys) -> Vec<(&'static str, &'static str, String)> {
    let p = &keys.product;
    let ed = keys.ed25519.to_base64();
    let xml = keys.rsa.to_xml();
    let id = p.id;
    let feature = p
        .features
        .first()
        .map(|f| format!("\"{f}\""))
        .unwrap_or_default();
    vec![
        (
            "snippet-rust",
            "Rust: the Keyturn client (keyturn-client)",
            format!(
                "// Cargo.toml: keyturn-client (crates/client in Keyturn's repository)\n\
                 const SERVER: &str = \"{server}\";\n\
                 const PRODUCT_ID: i64 = {id};\n\
                 const PUBLIC_KEY: &str = \"{ed}\";\n\n\
                 let client = keyturn_client::Client::new(SERVER, PRODUCT_ID, PUBLIC_KEY)?\n    \
                 .with_state_file(state_dir.join(\"license.json\"));\n\
                 client.activate(&key).await?;\n\
                 let validation = client.validate(&key, &[{feature}]).await?;\n\
                 if !validation.valid {{\n    \
                 eprintln!(\"{{}}\", validation.detail);\n\
                 }}\n"
            ),
        ),
        (
            "snippet-python",
            "Python: Cryptolens SDK (licensing)",
            format!(
                "# pip install licensing\n\
                 from licensing.methods import Key, Helpers\n\
                 from licensing.internal import HelperMethods\n\n\
                 HelperMethods.server_address = \"{server}/api/\"  # keep the trailing /\n\
                 RSA_PUB_KEY = \"{xml}\"\n\
                 TOKEN = \"kt_…\"  # an access token with cryptolens:activate\n\n\
                 license_key, message = Key.activate(token=TOKEN, rsa_pub_key=RSA_PUB_KEY,\n    \
                 product_id={id}, key=\"XXXXX-XXXXX-XXXXX-XXXXX\",\n    \
                 machine_code=Helpers.GetMachineCode(v=2))\n\
                 if license_key is None or not Helpers.IsOnRightMachine(license_key, v=2):\n    \
                 print(\"The license does not work:\", message)\n"
            ),
        ),
        (
            "snippet-node",
            "Node.js: Cryptolens SDK (cryptolens)",
            format!(
                "// npm install cryptolens\n\
                 const {{ Key, Helpers }} = require('cryptolens');\n\n\
                 const SERVER = '{server}';  // no /api, no trailing slash\n\
                 const RSA_PUB_KEY = '{xml}';\n\
                 const TOKEN = 'kt_…';  // an access token with cryptolens:activate\n\n\
                 Key.Activate(TOKEN, RSA_PUB_KEY, {id}, 'XXXXX-XXXXX-XXXXX-XXXXX',\n    \
                 Helpers.GetMachineCode(), 0, false, 0, 0, SERVER)\n  \
                 .then((license) => console.log('Valid until', new Date(license.Expires * 1000)))\n  \
                 .catch((error) => console.error('The license does not work:', error.message));\n"
            ),
        ),
        (
            "snippet-dotnet",
            ".NET: Cryptolens SDK (Cryptolens.Licensing)",
            format!(
                "// dotnet add package Cryptolens.Licensing\n\
                 using SKM.V3;\nusing SKM.V3.Methods;\nusing SKM.V3.Models;\n\n\
                 var RSAPubKey = \"{xml}\";\n\
                 var result = Key.Activate(token: \"kt_…\", parameters: new ActivateModel\n\
                 {{\n    \
                 ProductId = {id},\n    \
                 Key = licenseKey,\n    \
                 MachineCode = Helpers.GetMachineCodePI(v: 2),\n    \
                 Sign = true,\n    \
                 LicenseServerUrl = \"{server}\"  // the SDK adds /api/\n\
                 }});\n\
                 if (result == null || result.Result == ResultType.Error ||\n    \
                 !result.LicenseKey.HasValidSignature(RSAPubKey).IsValid())\n\
                 {{\n    \
                 Console.WriteLine(\"The license does not work: \" + result?.Message);\n\
                 }}\n"
            ),
        ),
    ]
}

pub fn product(
    session: &ConsoleSession,
    keys: &ProductKeys,
    plans: Option<&Page<Plan>>,
    server: &(String, bool),
    done: Option<&str>,
) -> Markup {
    let p = &keys.product;
    let (address, configured) = server;
    layout(
        &p.name,
        Some(session),
        html! {
            (notice(done))
            h1 { (p.name) }
            @if session.principal.require_for(Permission::ProductsWrite, p.id).is_ok() {
                p { a.button href={ "/admin/products/" (p.id) "/edit" } { "Edit product" } }
            }
            dl.facts {
                dt { "Product id" } dd { (p.id) }
                dt { "Description" } dd.pre { @if p.description.is_empty() { "—" } @else { (p.description) } }
                dt { "Features" }
                dd {
                    @if p.features.is_empty() { "none" } @else {
                        ol.inline {
                            @for (i, f) in p.features.iter().enumerate() {
                                li { code { (f) } @if i < 8 { " (F" (i + 1) ")" } }
                            }
                        }
                    }
                }
                dt { "Notes shown to programs" } dd { @if p.public_notes { "yes" } @else { "no" } }
                dt { "Metadata shown to programs" } dd { @if p.public_metadata.is_empty() { "none" } @else { (p.public_metadata.join(", ")) } }
                dt { "Expired licenses on the Cryptolens API" } dd { @if p.block_expired_licenses { "answered as blocked" } @else { "returned; the program checks Expires" } }
                dt { "Created" } dd { (when(p.created)) }
            }

            section aria-labelledby="keys" {
                h2 id="keys" { "Public keys" }
                p { "Programs verify what this server signs with these keys. Build them into the program; never fetch them at run time." }
                h3 { "Ed25519, base64 (Keyturn client)" }
                (copyable("key-ed25519", "the Ed25519 public key", &keys.ed25519.to_base64()))
                h3 { "Ed25519, PEM" }
                (copyable("key-pem", "the Ed25519 public key as PEM", &keys.ed25519.to_pem()))
                h3 { "RSA, XML (Cryptolens SDKs)" }
                (copyable("key-rsa", "the RSA public key as XML", &keys.rsa.to_xml()))
            }

            section aria-labelledby="code" {
                h2 id="code" { "Use it in a program" }
                p {
                    "Server address: " code { (address) }
                    @if !configured { " (the address this page was opened at; set KEYTURN_PUBLIC_URL to the address programs reach)" }
                    ". Product id: " code { (p.id) } "."
                }
                p { "The Cryptolens SDKs need an access token with the Cryptolens methods they call; create one under " a href="/admin/tokens" { "Access tokens" } ", limited to this product." }
                @for (id, title, text) in snippets(address, keys) {
                    h3 { (title) }
                    (copyable(id, title, &text))
                }
            }

            @if let Some(plans) = plans {
                section aria-labelledby="plans" {
                    h2 id="plans" { "Plans" }
                    @if session.principal.require_for(Permission::PlansWrite, p.id).is_ok() {
                        p { a.button href={ "/admin/plans/new?product=" (p.id) } { "New plan" } }
                    }
                    (plan_table(plans, &[]))
                    @if plans.next_cursor.is_some() {
                        p { a href={ "/admin/plans?product=" (p.id) } { "All plans of this product" } }
                    }
                }
            }
        },
    )
}

/// A page to pick the product something new is for.
pub fn choose_product(
    session: &ConsoleSession,
    title: &str,
    action: &str,
    products: &[Product],
) -> Markup {
    layout(
        title,
        Some(session),
        html! {
            h1 { (title) }
            @if products.is_empty() {
                p { "Create a product first: " a href="/admin/products/new" { "New product" } "." }
            } @else {
                form.card method="get" action=(action) {
                    label for="product" { "Product" }
                    select id="product" name="product" required {
                        @for p in products { option value=(p.id) { (p.name) " (" (p.id) ")" } }
                    }
                    button type="submit" { "Continue" }
                }
            }
        },
    )
}

// Plans.

fn period(days: Option<i64>) -> String {
    match days {
        Some(d) => format!("{d} days"),
        None => "perpetual".into(),
    }
}

fn machines(limit: i64) -> String {
    if limit == 0 {
        "unlimited".into()
    } else {
        limit.to_string()
    }
}

fn plan_table(plans: &Page<Plan>, products: &[Product]) -> Markup {
    let product_name = |id: i64| {
        products
            .iter()
            .find(|p| p.id == id)
            .map_or_else(|| id.to_string(), |p| p.name.clone())
    };
    html! {
        @if plans.data.is_empty() {
            p { "No plan yet." }
        } @else {
            table.stack {
                caption { "Plans, oldest first" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Id" }
                    @if !products.is_empty() { th scope="col" { "Product" } }
                    th scope="col" { "Period" } th scope="col" { "Machines" } th scope="col" { "Kind" }
                } }
                tbody {
                    @for plan in &plans.data {
                        tr {
                            td data-label="Name" { a href={ "/admin/plans/" (plan.id) } { (plan.name) } }
                            td data-label="Id" { (plan.id) }
                            @if !products.is_empty() { td data-label="Product" { (product_name(plan.product_id)) } }
                            td data-label="Period" { (period(plan.period_days)) }
                            td data-label="Machines" { (machines(plan.max_machines)) }
                            td data-label="Kind" {
                                @if plan.trial { "trial" } @else { "paid" }
                                @if plan.floating_lease_seconds.is_some() { ", floating" }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn plans(
    session: &ConsoleSession,
    found: &Page<Plan>,
    products: &[Product],
    product: Option<i64>,
    done: Option<&str>,
) -> Markup {
    let (base, new_plan_link) = match product {
        Some(p) => (
            format!("/admin/plans?product={p}"),
            format!("/admin/plans/new?product={p}"),
        ),
        None => ("/admin/plans".to_owned(), "/admin/plans/new".to_owned()),
    };
    layout(
        "Plans",
        Some(session),
        html! {
            (notice(done))
            h1 { "Plans" }
            @if may(session, Permission::PlansWrite) {
                p { a.button href=(new_plan_link) { "New plan" } }
            }
            form.filter method="get" action="/admin/plans" {
                label for="product" { "Product" }
                div.row {
                    select id="product" name="product" {
                        option value="" { "All products" }
                        @for p in products { option value=(p.id) selected[product == Some(p.id)] { (p.name) } }
                    }
                    button type="submit" { "Show" }
                }
            }
            (plan_table(found, products))
            (next_page(&base, found.next_cursor.as_ref()))
        },
    )
}

const QUANTITY_MODES: [(&str, &str); 2] = [
    ("keys", "One key per unit bought"),
    ("seats", "One key; machines = plan's limit × quantity"),
];
const DUNNING: [(&str, &str); 2] = [
    (
        "keep",
        "Keep the license until its paid time (and grace) ends",
    ),
    ("block", "Block the license until a payment succeeds"),
];
const ON_CANCEL: [(&str, &str); 2] = [
    ("block", "Block the license at once"),
    (
        "expire",
        "Let it run to the end of the paid time (and grace)",
    ),
];

/// The fields of a plan that can change after it was created: payment settings.
fn plan_payment_fields(plan: Option<&Plan>, stores: &Stores) -> Markup {
    let grace = plan.map_or(5, |p| p.grace_days);
    html! {
        (number_field("grace_days", "Grace days", Some(grace), "Days a subscription's license runs past its paid period, so a late payment never locks a customer out (0 to 365)."))
        (text_area("stripe_price_ids", "Stripe price, plan or product ids, one per line", &plan.map(|p| p.stripe_price_ids.join("\n")).unwrap_or_default(), None, 2))
        @for ((store, label), (_, ids)) in STORES.iter().zip(&stores.by_store) {
            (text_area(&format!("{store}_ids"), &format!("{label}, one per line"), &ids.join("\n"), None, 2))
        }
        @if !stores.other.is_empty() {
            (text_area("other_ids", "Other store ids (store:id), one per line", &stores.other.join("\n"), None, 2))
        }
        (select("quantity_mode", "A purchase of several units gives", &QUANTITY_MODES, plan.map_or(QuantityMode::default(), |p| p.quantity_mode).as_str()))
        (select("dunning", "When a subscription's payment fails", &DUNNING, plan.map_or(DunningRule::default(), |p| p.dunning).as_str()))
        (select("on_cancel", "When a subscription is cancelled", &ON_CANCEL, plan.map_or(CancelRule::default(), |p| p.on_cancel).as_str()))
        (buyer_fields(plan.map_or(BuyerRules::default(), |p| p.buyers)))
    }
}

/// What buyers of the plan may do themselves in the customer portal.
fn buyer_fields(rules: BuyerRules) -> Markup {
    html! {
        fieldset {
            legend { "What buyers may do in the customer portal" }
            (checkbox("buyers_may_free_machines", "Buyers may free a machine", rules.buyers_may_free_machines))
            (number_field("buyer_frees_max", "Machines a buyer may free per license", Some(rules.buyer_frees_max), "Within the window below (0 to 1000)."))
            (number_field("buyer_frees_days", "Window in days", Some(rules.buyer_frees_days), "Frees older than this no longer count (1 to 3650)."))
            (checkbox("buyers_may_download_files", "Buyers may download an offline license file for a machine code", rules.buyers_may_download_files))
            (number_field("buyer_file_days", "Days such a file lasts", Some(rules.buyer_file_days), "Never past the license's expiry (1 to 3650)."))
        }
    }
}

pub fn new_plan(session: &ConsoleSession, product: &Product) -> Markup {
    let title = format!("New plan for {}", product.name);
    layout(
        &title,
        Some(session),
        html! {
            h1 { (title) }
            form.card.wide method="post" action="/admin/plans" {
                (csrf(session))
                input type="hidden" name="product_id" value=(product.id);
                (text_field("name", "Name", "", None, true))
                fieldset {
                    legend { "The licenses it issues (fixed once created)" }
                    (number_field("period_days", "Period in days", None, "How long a license runs (1 to 36500); leave blank for perpetual licenses."))
                    @if !product.features.is_empty() {
                        fieldset.checks {
                            legend { "Features" }
                            @for (i, f) in product.features.iter().enumerate() {
                                div.check {
                                    input id={ "feature-" (i) } name="features" type="checkbox" value=(f);
                                    label for={ "feature-" (i) } { (f) }
                                }
                            }
                        }
                    }
                    (number_field("max_machines", "Machines per license", Some(0), "0 for unlimited."))
                    (number_field("floating_lease_seconds", "Floating lease in seconds", None, "Leave blank for node-locked licenses; a floating seat is held this long without a heartbeat (1 to 2592000)."))
                    (checkbox("trial", "Trial plan (needs a period)", false))
                }
                fieldset {
                    legend { "How it is sold" }
                    (plan_payment_fields(None, &Stores::empty()))
                }
                button type="submit" { "Create plan" }
            }
        },
    )
}

pub fn plan(
    session: &ConsoleSession,
    plan: &Plan,
    product: &Product,
    stores: &Stores,
    done: Option<&str>,
) -> Markup {
    let can_write = session
        .principal
        .require_for(Permission::PlansWrite, plan.product_id)
        .is_ok();
    layout(
        &plan.name,
        Some(session),
        html! {
            (notice(done))
            h1 { (plan.name) }
            dl.facts {
                dt { "Plan id" } dd { (plan.id) }
                dt { "Product" } dd { a href={ "/admin/products/" (product.id) } { (product.name) } }
                dt { "Period" } dd { (period(plan.period_days)) }
                dt { "Features" } dd { @if plan.features.is_empty() { "none" } @else { (plan.features.join(", ")) } }
                dt { "Machines per license" } dd { (machines(plan.max_machines)) }
                dt { "Floating lease" } dd { @match plan.floating_lease_seconds { Some(s) => { (s) " seconds" }, None => "none (node-locked)" } }
                dt { "Trial" } dd { @if plan.trial { "yes" } @else { "no" } }
                dt { "Grace days" } dd { (plan.grace_days) }
                dt { "Stripe ids" } dd { @if plan.stripe_price_ids.is_empty() { "none" } @else { (plan.stripe_price_ids.join(", ")) } }
                dt { "Store product ids" } dd { @if plan.store_product_ids.is_empty() { "none" } @else { (plan.store_product_ids.join(", ")) } }
                dt { "Several units give" } dd { (plan.quantity_mode.as_str()) }
                dt { "Failed payment" } dd { (plan.dunning.as_str()) }
                dt { "Cancellation" } dd { (plan.on_cancel.as_str()) }
                dt { "Buyers free machines" } dd {
                    @if plan.buyers.buyers_may_free_machines {
                        (plan.buyers.buyer_frees_max) " per license in " (plan.buyers.buyer_frees_days) " days"
                    } @else { "no" }
                }
                dt { "Buyers download files" } dd {
                    @if plan.buyers.buyers_may_download_files { "yes, lasting " (plan.buyers.buyer_file_days) " days" } @else { "no" }
                }
                dt { "Created" } dd { (when(plan.created)) }
            }
            @if can_write {
                section aria-labelledby="edit" {
                    h2 id="edit" { "Change how it is sold" }
                    p { "The period, features and limits stay as they are: licenses were issued with them. Make a new plan for other terms." }
                    form.card.wide method="post" action={ "/admin/plans/" (plan.id) } {
                        (csrf(session))
                        (text_field("name", "Name", &plan.name, None, true))
                        (plan_payment_fields(Some(plan), stores))
                        button type="submit" { "Save plan" }
                    }
                }
            }
        },
    )
}

// Access tokens.

fn permission_list(t: &AccessToken) -> String {
    t.permissions
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn tokens(session: &ConsoleSession, found: &Page<AccessToken>, done: Option<&str>) -> Markup {
    layout(
        "Access tokens",
        Some(session),
        html! {
            (notice(done))
            h1 { "Access tokens" }
            p { a.button href="/admin/tokens/new" { "New access token" } }
            table.stack {
                caption { "Access tokens, oldest first" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Permissions" }
                    th scope="col" { "Product" } th scope="col" { "Key lock" } th scope="col" { "Expires" }
                    th scope="col" { "Created" } th scope="col" { "State" } th scope="col" { span.sr { "Action" } }
                } }
                tbody {
                    @for t in &found.data {
                        tr {
                            td data-label="Name" { (t.name) }
                            td data-label="Permissions" { (permission_list(t)) }
                            td data-label="Product" { @match t.product_id { Some(p) => (p), None => "all" } }
                            td data-label="Key lock" { @match t.key_lock { Some(-1) => "key required", Some(k) => { "license " (k) }, None => "none" } }
                            td data-label="Expires" { @match t.expires { Some(at) => (day(at)), None => "never" } }
                            td data-label="Created" { (day(t.created)) }
                            td data-label="State" { @if t.revoked.is_some() { "revoked" } @else { "active" } }
                            td.action {
                                @if t.revoked.is_none() {
                                    form method="post" action={ "/admin/tokens/" (t.id) "/revoke" } {
                                        (csrf(session))
                                        button.danger type="submit" aria-label={ "Revoke " (t.name) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (next_page("/admin/tokens", found.next_cursor.as_ref()))
        },
    )
}

pub fn new_token(session: &ConsoleSession, products: &[Product]) -> Markup {
    let grantable: Vec<Permission> = Permission::ALL
        .into_iter()
        .filter(|p| session.principal.holds(*p))
        .collect();
    let group = |cryptolens: bool| {
        grantable
            .iter()
            .filter(move |p| p.is_cryptolens_method() == cryptolens)
            .copied()
    };
    layout(
        "New access token",
        Some(session),
        html! {
            h1 { "New access token" }
            form.card.wide method="post" action="/admin/tokens" {
                (csrf(session))
                (text_field("name", "Name", "", Some("Who or what uses it, e.g. the app's Python build."), true))
                fieldset.checks {
                    legend { "Keyturn API permissions" }
                    @for p in group(false) {
                        div.check {
                            input id={ "perm-" (p.as_str()) } name="permissions" type="checkbox" value=(p.as_str());
                            label for={ "perm-" (p.as_str()) } { code { (p.as_str()) } }
                        }
                    }
                }
                fieldset.checks {
                    legend { "Cryptolens API methods (for the Cryptolens SDKs)" }
                    @for p in group(true) {
                        div.check {
                            input id={ "perm-" (p.as_str()) } name="permissions" type="checkbox" value=(p.as_str());
                            label for={ "perm-" (p.as_str()) } { code { (p.as_str().trim_start_matches("cryptolens:")) } }
                        }
                    }
                }
                label for="product_id" { "Product" }
                select id="product_id" name="product_id" {
                    option value="" { "All products" }
                    @for p in products { option value=(p.id) { (p.name) " (" (p.id) ")" } }
                }
                (number_field("key_lock", "Key lock", None, "Blank for none; a license id limits the token to that license; -1 makes callers name the key on every call."))
                (number_field("feature_lock", "Hidden license fields (Cryptolens feature lock)", Some(0), "FieldsToReturn bits the token's callers never see; 0 hides nothing."))
                (number_field("expires_days", "Expires after days", None, "Blank: never expires."))
                button type="submit" { "Create token" }
            }
        },
    )
}

pub fn token_created(
    session: &ConsoleSession,
    token: &AccessToken,
    secret: Option<&str>,
) -> Markup {
    layout(
        &format!("Token {}", token.name),
        Some(session),
        html! {
            h1 { "Token " (token.name) }
            @match secret {
                Some(secret) => {
                    div.secret role="status" {
                        p { strong { "Copy the token now. It is shown only this once: Keyturn keeps only its hash." } }
                        (copyable("token-secret", "the token", secret))
                    }
                }
                None => {
                    p.notice role="status" { "The token's secret was shown once, when it was created, and cannot be shown again. If it was lost, revoke the token and create another." }
                }
            }
            dl.facts {
                dt { "Permissions" } dd { (permission_list(token)) }
                dt { "Product" } dd { @match token.product_id { Some(p) => (p), None => "all" } }
                dt { "Expires" } dd { @match token.expires { Some(at) => (when(at)), None => "never" } }
            }
            p { a href="/admin/tokens" { "Back to the access tokens" } }
        },
    )
}

// Payment forms.

pub fn forms(session: &ConsoleSession, found: &Page<PaymentForm>, done: Option<&str>) -> Markup {
    layout(
        "Payment forms",
        Some(session),
        html! {
            (notice(done))
            h1 { "Payment forms" }
            @if may_unrestricted(session, Permission::PaymentsWrite) {
                p { a.button href="/admin/forms/new" { "New payment form" } }
            }
            @if found.data.is_empty() {
                p { "No payment form yet." }
            } @else {
                table.stack {
                    caption { "Payment forms, oldest first" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Product" } th scope="col" { "Offers" } th scope="col" { "Buy page" } th scope="col" { "Created" } } }
                    tbody {
                        @for f in &found.data {
                            tr {
                                td data-label="Name" { a href={ "/admin/forms/" (f.id) } { (f.name) } }
                                td data-label="Product" { (f.product_id) }
                                td data-label="Offers" { (f.offers.len()) }
                                td data-label="Buy page" { a href={ "/buy/" (f.public_id) } { "Open " span.sr { "the buy page of " (f.name) } } }
                                td data-label="Created" { (day(f.created)) }
                            }
                        }
                    }
                }
                (next_page("/admin/forms", found.next_cursor.as_ref()))
            }
        },
    )
}

/// What stops this server from taking a form's payments, if anything.
fn setup_warnings(setup: PaymentSetup) -> Markup {
    html! {
        @if !setup.public_url {
            p.warning role="note" { "KEYTURN_PUBLIC_URL is not set: providers could not send buyers back, so forms are refused until it is." }
        }
        @if !setup.stripe && !setup.paypal {
            p.warning role="note" { "Neither Stripe (KEYTURN_STRIPE_API_KEY) nor PayPal (KEYTURN_PAYPAL_CLIENT_ID and _SECRET) is configured: no offer can be paid." }
        }
    }
}

/// The offer rows of a form: the offers it has, then empty rows for more.
fn offer_rows(plans: &[Plan], offers: &[Offer]) -> Markup {
    let rows = (offers.len() + OFFER_ROWS_NEW).min(OFFER_ROWS_MAX);
    let modes = [
        ("payment", "One-time payment"),
        ("subscription", "Subscription"),
    ];
    html! {
        @for i in 0..rows {
            @let offer = offers.get(i);
            @let f = |name: &str| format!("offer{i}_{name}");
            fieldset.offer {
                legend { "Offer " (i + 1) @if offer.is_none() { " (leave the plan empty for none)" } }
                label for=(f("plan")) { "Plan" }
                select id=(f("plan")) name=(f("plan")) {
                    option value="" { "none" }
                    @for p in plans {
                        option value=(p.id) selected[offer.is_some_and(|o| o.plan_id == p.id)] { (p.name) " (" (p.id) ")" }
                    }
                }
                (text_field(&f("label"), "Label the buyer sees", offer.map_or("", |o| o.label.as_str()), None, false))
                (text_field(&f("price"), "Price the buyer sees", offer.map_or("", |o| o.price.as_str()), None, false))
                (text_field(&f("stripe_price_id"), "Stripe price id", offer.map_or("", |o| o.stripe_price_id.as_str()), Some("Must be one of the plan's Stripe ids; blank for PayPal only."), false))
                (select(&f("mode"), "Paid", &modes, offer.map_or(OfferMode::default(), |o| o.mode).as_str()))
                (text_field(&f("paypal_amount"), "PayPal amount per unit", offer.and_then(|o| o.paypal_amount.as_deref()).unwrap_or(""), Some("Like 49.00; blank when not sold with PayPal."), false))
                (text_field(&f("currency"), "PayPal currency", offer.and_then(|o| o.currency.as_deref()).unwrap_or(""), Some("Three letters, e.g. EUR (USD when blank)."), false))
            }
        }
    }
}

pub fn new_form(
    session: &ConsoleSession,
    product: &Product,
    plans: &[Plan],
    setup: PaymentSetup,
) -> Markup {
    let title = format!("New payment form for {}", product.name);
    layout(
        &title,
        Some(session),
        html! {
            h1 { (title) }
            (setup_warnings(setup))
            @if plans.is_empty() {
                p { "The product has no plan to offer yet: " a href={ "/admin/plans/new?product=" (product.id) } { "create one" } "." }
            } @else {
                form.card.wide method="post" action="/admin/forms" {
                    (csrf(session))
                    input type="hidden" name="product_id" value=(product.id);
                    (text_field("name", "Name", "", None, true))
                    (offer_rows(plans, &[]))
                    (text_area("description", "Description on the buy page", "", Some("Plain text: what the buyer gets."), 3))
                    (text_field("tax_note", "Tax note", "", Some("Shown under the prices, e.g. Prices include VAT."), false))
                    (text_area("success_text", "Text above the keys after a purchase", "", Some("Blank for the default thanks."), 2))
                    (text_field("email_subject", "Key mail subject", "", Some("Blank for the default; {product} is filled in."), false))
                    (text_area("email_body", "Key mail text", "", Some("Blank for the default; must mention {keys}; {name} and {product} are filled in."), 4))
                    button type="submit" { "Create payment form" }
                }
            }
        },
    )
}

pub fn form(
    session: &ConsoleSession,
    form: &PaymentForm,
    product: &Product,
    plans: &[Plan],
    server: &str,
    done: Option<&str>,
) -> Markup {
    let link = format!("{server}/buy/{}", form.public_id);
    let plan_name = |id: i64| {
        plans
            .iter()
            .find(|p| p.id == id)
            .map_or_else(|| id.to_string(), |p| p.name.clone())
    };
    layout(
        &form.name,
        Some(session),
        html! {
            (notice(done))
            h1 { (form.name) }
            dl.facts {
                dt { "Product" } dd { a href={ "/admin/products/" (product.id) } { (product.name) } }
                dt { "Created" } dd { (when(form.created)) }
                dt { "Buyers may order" } dd { "1 to " (MAX_FORM_QUANTITY) " units at once" }
            }
            section aria-labelledby="link" {
                h2 id="link" { "Buy page" }
                p { "Link buyers to this address:" }
                (copyable("buy-link", "the buy page's address", &link))
                p { a.button href={ "/buy/" (form.public_id) } { "Preview the buy page" } }
            }
            section aria-labelledby="offers" {
                h2 id="offers" { "Offers" }
                table.stack {
                    thead { tr { th scope="col" { "Plan" } th scope="col" { "Label" } th scope="col" { "Price" } th scope="col" { "Paid with" } } }
                    tbody {
                        @for o in &form.offers {
                            tr {
                                td data-label="Plan" { a href={ "/admin/plans/" (o.plan_id) } { (plan_name(o.plan_id)) } }
                                td data-label="Label" { (o.label) }
                                td data-label="Price" { (o.price) }
                                td data-label="Paid with" {
                                    @if !o.stripe_price_id.is_empty() { "Stripe " code { (o.stripe_price_id) } " (" (o.mode.as_str()) ")" }
                                    @if let Some(a) = &o.paypal_amount { @if !o.stripe_price_id.is_empty() { "; " } "PayPal " (a) " " (o.currency.as_deref().unwrap_or("USD")) }
                                }
                            }
                        }
                    }
                }
            }
            @if may_unrestricted(session, Permission::PaymentsWrite) {
                section aria-labelledby="edit" {
                    h2 id="edit" { "Edit the form" }
                    form.card.wide method="post" action={ "/admin/forms/" (form.id) } {
                        (csrf(session))
                        (text_field("name", "Name", &form.name, None, true))
                        (offer_rows(plans, &form.offers))
                        (text_area("description", "Description on the buy page", &form.description, Some("Plain text: what the buyer gets."), 3))
                        (text_field("tax_note", "Tax note", &form.tax_note, Some("Shown under the prices, e.g. Prices include VAT."), false))
                        (text_area("success_text", "Text above the keys after a purchase", &form.success_text, None, 2))
                        (text_field("email_subject", "Key mail subject", &form.email_subject, None, true))
                        (text_area("email_body", "Key mail text", &form.email_body, Some("Must mention {keys}; {name} and {product} are filled in."), 4))
                        button type="submit" { "Save payment form" }
                    }
                }
            }
        },
    )
}

// License URLs.

pub fn license_urls(
    session: &ConsoleSession,
    found: &Page<LicenseUrl>,
    done: Option<&str>,
) -> Markup {
    layout(
        "License URLs",
        Some(session),
        html! {
            (notice(done))
            h1 { "License URLs" }
            p { "A store that can only call a URL after a sale (SendOwl, DPD, any other) calls its license URL and gets the new keys as plain text." }
            @if may_unrestricted(session, Permission::PaymentsWrite) {
                p { a.button href="/admin/license-urls/new" { "New license URL" } }
            }
            @if found.data.is_empty() {
                p { "No license URL yet." }
            } @else {
                table.stack {
                    caption { "License URLs, oldest first" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Store" } th scope="col" { "Plan" } th scope="col" { "Mails the buyer" } th scope="col" { "Secret since" } } }
                    tbody {
                        @for u in &found.data {
                            tr {
                                td data-label="Name" { a href={ "/admin/license-urls/" (u.id) } { (u.name) } }
                                td data-label="Store" { (u.store) }
                                td data-label="Plan" { a href={ "/admin/plans/" (u.plan_id) } { "plan " (u.plan_id) } }
                                td data-label="Mails the buyer" { @if u.email_buyer { "yes" } @else { "no" } }
                                td data-label="Secret since" { (day(u.rotated)) }
                            }
                        }
                    }
                }
                (next_page("/admin/license-urls", found.next_cursor.as_ref()))
            }
        },
    )
}

const STORE_CHOICES: [(&str, &str); 3] = [
    ("sendowl", "SendOwl"),
    ("dpd", "DPD"),
    ("generic", "Another store"),
];

fn plan_select(plans: &[Plan], selected: Option<i64>) -> Markup {
    html! {
        label for="plan_id" { "Plan its sales issue" }
        select id="plan_id" name="plan_id" required {
            @for p in plans {
                option value=(p.id) selected[selected == Some(p.id)] { (p.name) " (plan " (p.id) ", product " (p.product_id) ")" }
            }
        }
    }
}

/// The parameter-name fields, showing the names in use (or the defaults when creating).
fn param_fields(params: Option<&LicenseUrlParams>) -> Markup {
    let value = |f: fn(&LicenseUrlParams) -> &str| params.map(f).unwrap_or("").to_owned();
    let hint = if params.is_none() {
        Some("Blank for the store's own name.")
    } else {
        None
    };
    html! {
        fieldset {
            legend { "Names of the parameters the store sends" }
            (text_field("order_id_param", "Order id", &value(|p| p.order_id.as_str()), hint, false))
            (text_field("name_param", "Buyer name", &value(|p| p.name.as_str()), None, false))
            (text_field("email_param", "Buyer email", &value(|p| p.email.as_str()), None, false))
            (text_field("quantity_param", "Quantity", &value(|p| p.quantity.as_str()), None, false))
            (text_field("item_param", "Item (tells apart several calls for one order)", &value(|p| p.item.as_str()), None, false))
        }
    }
}

pub fn new_license_url(session: &ConsoleSession, plans: &[Plan]) -> Markup {
    layout(
        "New license URL",
        Some(session),
        html! {
            h1 { "New license URL" }
            @if plans.is_empty() {
                p { "Create a plan first: " a href="/admin/plans/new" { "New plan" } "." }
            } @else {
                form.card.wide method="post" action="/admin/license-urls" {
                    (csrf(session))
                    (text_field("name", "Name", "", None, true))
                    (select("store", "Store", &STORE_CHOICES, "sendowl"))
                    (plan_select(plans, None))
                    (param_fields(None))
                    (checkbox("email_buyer", "Mail the buyer their keys too", false))
                    button type="submit" { "Create license URL" }
                }
            }
        },
    )
}

pub fn license_url(
    session: &ConsoleSession,
    url: &LicenseUrl,
    plans: &[Plan],
    reveal: &Reveal<'_>,
    done: Option<&str>,
) -> Markup {
    let can_write = may_unrestricted(session, Permission::PaymentsWrite);
    layout(
        &url.name,
        Some(session),
        html! {
            (notice(done))
            h1 { (url.name) }
            @match reveal.secret {
                Some(secret) => {
                    div.secret role="status" {
                        p { strong { "Give the store this URL now. It is shown only this once: Keyturn keeps only a hash of its secret." } }
                        (copyable("license-url", "the license URL", &format!("{}/l/{}/{secret}", reveal.server, url.id)))
                        @if url.store == "sendowl" {
                            p { "SendOwl sends nothing by itself: add its placeholders to the URL, e.g. "
                                code { "?" (url.params.order_id) "={{order.id}}&" (url.params.name) "={{order.buyer_name}}&" (url.params.email) "={{order.buyer_email}}" } "." }
                        }
                    }
                }
                None => {
                    p { "The URL holds a secret, shown only when the URL is created or its secret replaced. Replacing it makes the old URL stop working." }
                }
            }
            dl.facts {
                dt { "Store" } dd { (url.store) }
                dt { "Plan" } dd { a href={ "/admin/plans/" (url.plan_id) } { "plan " (url.plan_id) } }
                dt { "Parameters" } dd {
                    "order id " code { (url.params.order_id) } ", name " code { (url.params.name) }
                    ", email " code { (url.params.email) } ", quantity " code { (url.params.quantity) }
                    ", item " code { (url.params.item) }
                }
                dt { "Mails the buyer" } dd { @if url.email_buyer { "yes" } @else { "no" } }
                dt { "Created" } dd { (when(url.created)) }
                dt { "Secret since" } dd { (when(url.rotated)) }
            }
            @if can_write {
                section aria-labelledby="edit" {
                    h2 id="edit" { "Edit" }
                    form.card.wide method="post" action={ "/admin/license-urls/" (url.id) } {
                        (csrf(session))
                        (text_field("name", "Name", &url.name, None, true))
                        (plan_select(plans, Some(url.plan_id)))
                        (param_fields(Some(&url.params)))
                        (checkbox("email_buyer", "Mail the buyer their keys too", url.email_buyer))
                        button type="submit" { "Save license URL" }
                    }
                }
                section aria-labelledby="secret" {
                    h2 id="secret" { "Secret" }
                    div.forms {
                        form.card method="post" action={ "/admin/license-urls/" (url.id) "/rotate" } {
                            (csrf(session))
                            p { "A new secret gives a new URL; the store must be given it, as the old one stops working." }
                            button type="submit" { "Replace the secret" }
                        }
                        form.card method="post" action={ "/admin/license-urls/" (url.id) "/delete" } {
                            (csrf(session))
                            p { "Deleting the URL stops every call to it; the licenses it issued stay." }
                            button.danger type="submit" { "Delete license URL" }
                        }
                    }
                }
            }
        },
    )
}

// Payment providers.

/// A provider's name as people know it.
fn provider_name(provider: &str) -> &str {
    match provider {
        "stripe" => "Stripe",
        "paypal" => "PayPal",
        "paddle" => "Paddle",
        "lemonsqueezy" => "Lemon Squeezy",
        "fastspring" => "FastSpring",
        "gumroad" => "Gumroad",
        "license_url" => "License URLs",
        other => other,
    }
}

/// How a provider is set up, and where it sends its events.
fn provider_setup(provider: &str, c: &Configured) -> (bool, String, String) {
    let secrets = |n: usize| match n {
        0 => "no webhook secret".to_owned(),
        1 => "webhook secret set".to_owned(),
        n => format!("{n} webhook secrets (rotating)"),
    };
    let (on, what) = match provider {
        "stripe" => (
            c.stripe_webhook,
            format!(
                "{}; {}",
                if c.stripe_webhook {
                    "webhook secret set"
                } else {
                    "no webhook secret (KEYTURN_STRIPE_WEBHOOK_SECRET)"
                },
                if c.stripe_api {
                    "API key set: checkouts and sync"
                } else {
                    "no API key: no checkouts"
                }
            ),
        ),
        "paypal" => (
            c.paypal,
            if c.paypal {
                "client credentials and webhook id set".into()
            } else {
                "not configured (KEYTURN_PAYPAL_*)".into()
            },
        ),
        "paddle" => (c.paddle > 0, secrets(c.paddle)),
        "lemonsqueezy" => (c.lemonsqueezy > 0, secrets(c.lemonsqueezy)),
        "fastspring" => (c.fastspring > 0, secrets(c.fastspring)),
        "gumroad" => (
            c.gumroad,
            if c.gumroad {
                "secret ping URL set".into()
            } else {
                "no ping secret".into()
            },
        ),
        _ => (true, "each license URL holds its own secret".into()),
    };
    let endpoint = match provider {
        "gumroad" => "/webhooks/gumroad/<the secret>".to_owned(),
        "license_url" => "/l/<id>/<secret>".to_owned(),
        p => format!("/webhooks/{p}"),
    };
    let base = c.public_url.as_deref().unwrap_or("").trim_end_matches('/');
    (on, what, format!("{base}{endpoint}"))
}

pub fn providers(session: &ConsoleSession, status: &[ProviderStatus], c: &Configured) -> Markup {
    layout(
        "Payment providers",
        Some(session),
        html! {
            h1 { "Payment providers" }
            p {
                "Public address: "
                @match &c.public_url {
                    Some(url) => code { (url) },
                    None => strong { "not set (KEYTURN_PUBLIC_URL): payment forms take no checkout" },
                }
                ". Key mail to store buyers: " @if c.email_buyers { "on" } @else { "off" } "."
            }
            p { "Secrets are never shown here; only whether they are set and what deliveries came to." }
            table.stack {
                caption { "Each provider's set-up and deliveries" }
                thead { tr {
                    th scope="col" { "Provider" } th scope="col" { "Set up" } th scope="col" { "Endpoint" }
                    th scope="col" { "Last event" } th scope="col" { "Failed events" } th scope="col" { "Refused deliveries" }
                } }
                tbody {
                    @for s in status {
                        @let (on, what, endpoint) = provider_setup(&s.provider, c);
                        tr {
                            th scope="row" data-label="Provider" { (provider_name(&s.provider)) }
                            td data-label="Set up" {
                                span class=(if on { "badge valid" } else { "badge off" }) { @if on { "on" } @else { "off" } }
                                " " (what)
                            }
                            td data-label="Endpoint" { code { (endpoint) } }
                            td data-label="Last event" { @match s.activity.last_received { Some(at) => (when(at)), None => "none yet" } }
                            td data-label="Failed events" {
                                (s.activity.failed)
                                @if let Some(at) = s.activity.last_failed { ", last " (when(at)) }
                            }
                            td data-label="Refused deliveries" {
                                @if s.bad_signature.is_none() && s.not_configured.is_none() { "none" }
                                @if let Some((n, at, why)) = &s.bad_signature {
                                    p.error { (n) " with a wrong signature or secret, last " (when(*at)) ": " (why) }
                                }
                                @if let Some((n, at, why)) = &s.not_configured {
                                    p.error { (n) " while not set up, last " (when(*at)) ": " (why) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn store_ids_split_by_their_prefix() {
        let plan = Plan {
            id: 1,
            product_id: 1,
            name: "p".into(),
            period_days: None,
            features: vec![],
            max_machines: 0,
            floating_lease_seconds: None,
            trial: false,
            grace_days: 5,
            stripe_price_ids: vec![],
            store_product_ids: vec![
                "paddle:pri_1".into(),
                "gumroad:abc".into(),
                "paddle:pri_2".into(),
                "elsewhere:9".into(),
            ],
            quantity_mode: QuantityMode::Keys,
            dunning: DunningRule::Keep,
            on_cancel: CancelRule::Block,
            buyers: Default::default(),
            created: Utc::now(),
            expiry_reminder_days: None,
        };
        let s = Stores::of(&plan);
        assert_eq!(
            s.by_store[0],
            ("paddle", vec!["pri_1".into(), "pri_2".into()])
        );
        assert_eq!(s.by_store[3], ("gumroad", vec!["abc".into()]));
        assert_eq!(s.other, ["elsewhere:9"]);
    }

    #[test]
    fn a_done_code_never_echoes_the_request() {
        assert_eq!(done_message(Some("<b>")), None);
        assert!(done_message(Some("created")).is_some());
    }

    #[test]
    fn endpoints_never_show_a_secret() {
        let c = Configured {
            public_url: Some("https://licenses.example.com/".into()),
            stripe_webhook: true,
            stripe_api: false,
            paypal: false,
            paddle: 2,
            lemonsqueezy: 0,
            fastspring: 0,
            gumroad: true,
            email_buyers: false,
        };
        let (on, what, at) = provider_setup("gumroad", &c);
        assert!(on);
        assert_eq!(
            at,
            "https://licenses.example.com/webhooks/gumroad/<the secret>"
        );
        assert_eq!(what, "secret ping URL set");
        assert_eq!(
            provider_setup("paddle", &c).1,
            "2 webhook secrets (rotating)"
        );
        assert!(!provider_setup("lemonsqueezy", &c).0);
    }
}
