mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::{Parser, Subcommand};
use keyturn::config::{LogFormat, ServeArgs, Settings, StoreArgs, StripeArgs};
use keyturn::startup::{open_existing_store, open_store, Application};
use keyturn_app::{
    App, Extension, LicenseFileRequest, LicenseQuery, LicenseSpec, NewCustomerInput, NewPlanInput,
    NewProductInput, NewTokenInput, PageRequest, Principal, ProductPatch,
};
use keyturn_core::payment::{CancelRule, DunningRule, QuantityMode};
use keyturn_core::Permission;
use serde::Serialize;

/// Keyturn: a self-hosted software licensing server with payments built in.
#[derive(Parser)]
#[command(name = "keyturn", version)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    stripe: StripeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Create or update the database schema, then exit.
    Migrate,
    /// Access tokens for the API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Products and their signing keys.
    #[command(subcommand)]
    Product(ProductCommand),
    /// Plans (license templates).
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Customers.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Licenses.
    #[command(subcommand)]
    License(LicenseCommand),
    /// Stripe integration.
    #[command(subcommand)]
    Stripe(StripeCommand),
    /// Hosted payment forms.
    #[command(subcommand)]
    Form(FormCommand),
    /// Secret URLs that stores call after a sale to get keys.
    #[command(subcommand)]
    LicenseUrl(LicenseUrlCommand),
    /// The products' private signing keys, and the master key that seals them.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// People who sign in to the admin console (/admin).
    #[command(subcommand)]
    User(user::UserCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random master key. Keep it apart from the database and its backups.
    NewMasterKey,
    /// How many signing keys are sealed and how many are stored in plain text.
    Status,
    /// Seal every signing key with the master key (KEYTURN_MASTER_KEY or
    /// KEYTURN_MASTER_KEY_FILE). To rotate, also give the master key they are sealed with now.
    Seal {
        /// The master key the keys are sealed with now (when rotating to a new one).
        #[arg(long, env = "KEYTURN_OLD_MASTER_KEY", hide_env_values = true)]
        old_master_key: Option<String>,
        /// A file holding the old master key.
        #[arg(long, env = "KEYTURN_OLD_MASTER_KEY_FILE")]
        old_master_key_file: Option<PathBuf>,
    },
    /// Store every signing key in plain text again, opened with the master key.
    Unseal,
}

#[derive(Subcommand)]
enum FormCommand {
    /// Create a form and print its path.
    Create {
        #[arg(long)]
        product: i64,
        #[arg(long)]
        name: String,
        /// An offer as plan_id:stripe_price_id:mode:label:price, e.g.
        /// `2:price_1Pro:subscription:Pro monthly:€15 / month` (repeat for several).
        #[arg(long = "offer", required = true)]
        offers: Vec<String>,
        #[arg(long)]
        success_text: Option<String>,
    },
    List,
}

fn parse_offer(s: &str) -> anyhow::Result<keyturn_core::payment::Offer> {
    let parts: Vec<&str> = s.splitn(5, ':').collect();
    anyhow::ensure!(
        parts.len() == 5,
        "an offer is plan_id:stripe_price_id:mode:label:price, not {s:?}"
    );
    Ok(keyturn_core::payment::Offer {
        plan_id: parts[0].trim().parse().context("the offer's plan id")?,
        stripe_price_id: parts[1].trim().into(),
        mode: keyturn_core::payment::OfferMode::parse(parts[2].trim())
            .context("the offer's mode is payment or subscription")?,
        label: parts[3].trim().into(),
        price: parts[4].trim().into(),
        paypal_amount: None,
        currency: None,
    })
}

#[derive(Subcommand)]
enum LicenseUrlCommand {
    /// Create one and print its path (the secret in it is shown only now).
    Create {
        #[arg(long)]
        plan: i64,
        /// sendowl, dpd or generic: the parameter names the store sends.
        #[arg(long, default_value = "generic")]
        store: String,
        #[arg(long, default_value = "store")]
        name: String,
        /// Name of the order id parameter, when the store sends another.
        #[arg(long)]
        order_id_param: Option<String>,
        #[arg(long)]
        email_buyer: bool,
    },
    List,
    /// Replace the secret; the old URL stops working.
    Rotate {
        id: i64,
    },
}

#[derive(Subcommand)]
enum StripeCommand {
    /// Fetch the events Stripe sent since the last one seen and apply any that were missed.
    Sync,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (it is shown only this once).
    Create {
        /// Allow everything.
        #[arg(long)]
        admin: bool,
        #[arg(long, default_value = "cli")]
        name: String,
        /// A permission such as licenses:read or cryptolens:activate (repeat for several).
        #[arg(long = "permission")]
        permissions: Vec<Permission>,
        /// A Cryptolens Web API method the token may call, e.g. Activate, GetKey, CreateKey
        /// (repeat for several; same as --permission cryptolens:<method>).
        #[arg(long = "cryptolens", value_parser = cryptolens_method)]
        cryptolens: Vec<Permission>,
        /// Limit the token to one product.
        #[arg(long)]
        product: Option<i64>,
        /// Cryptolens key lock: limit the token to one license (by id), or -1 to make callers
        /// name the key on every call (and allow auth/KeyLock).
        #[arg(long, allow_hyphen_values = true)]
        key_lock: Option<i64>,
        /// Cryptolens feature lock: the license fields Activate and GetKey hide from the
        /// token's callers (FieldsToReturn bits, e.g. 32 hides the customer).
        #[arg(long, default_value_t = 0)]
        feature_lock: i64,
        /// Expire after this many days.
        #[arg(long)]
        expires_days: Option<i64>,
    },
    List,
    Revoke {
        id: i64,
    },
}

#[derive(Subcommand)]
enum ProductCommand {
    Create {
        #[arg(long)]
        name: String,
        /// A feature name (repeat for several; order gives Cryptolens F1..F8).
        #[arg(long = "feature")]
        features: Vec<String>,
        /// On the Cryptolens API, answer expired licenses as blocked (Cryptolens's "block
        /// expired licenses"); otherwise they are returned and the program checks the expiry.
        #[arg(long)]
        block_expired_licenses: bool,
    },
    /// Change a product's settings.
    Update {
        id: i64,
        #[arg(long)]
        name: Option<String>,
        /// `true` or `false` (see `create`).
        #[arg(long)]
        block_expired_licenses: Option<bool>,
    },
    List,
    /// Print a product's public key.
    PublicKey {
        id: i64,
        /// `ed25519` (base64; PEM on stderr) or `rsa-xml` (the <RSAKeyValue> the Cryptolens
        /// SDKs take).
        #[arg(long, default_value = "ed25519")]
        format: KeyFormat,
    },
}

#[derive(Subcommand)]
enum PlanCommand {
    Create {
        #[arg(long)]
        product: i64,
        #[arg(long)]
        name: String,
        /// Omit for a perpetual plan.
        #[arg(long)]
        period_days: Option<i64>,
        #[arg(long, default_value_t = 0)]
        max_machines: i64,
        #[arg(long = "feature")]
        features: Vec<String>,
        #[arg(long)]
        floating_lease_seconds: Option<i64>,
        #[arg(long)]
        trial: bool,
        #[arg(long)]
        grace_days: Option<i64>,
        /// A Stripe price, plan or product id that buys this plan (repeat for several).
        #[arg(long = "stripe-price")]
        stripe_price_ids: Vec<String>,
        /// Another store's product id, prefixed with the store (`paddle:pri_…`, repeat for several).
        #[arg(long = "store-product")]
        store_product_ids: Vec<String>,
        /// A quantity above one buys that many keys, or one key with that many seats.
        #[arg(long, value_enum, default_value = "keys")]
        quantity_mode: QuantityArg,
        /// When a subscription is overdue: keep the license until it expires, or block it.
        #[arg(long, value_enum, default_value = "keep")]
        dunning: DunningArg,
        /// When a subscription is cancelled: block at once, or let it expire.
        #[arg(long, value_enum, default_value = "block")]
        on_cancel: CancelArg,
    },
    List {
        #[arg(long)]
        product: Option<i64>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum QuantityArg {
    Keys,
    Seats,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DunningArg {
    Keep,
    Block,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CancelArg {
    Block,
    Expire,
}

#[derive(Subcommand)]
enum CustomerCommand {
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        company: Option<String>,
    },
    List {
        #[arg(long)]
        email: Option<String>,
    },
}

#[derive(Subcommand)]
enum LicenseCommand {
    Create {
        #[arg(long)]
        product: Option<i64>,
        #[arg(long)]
        plan: Option<i64>,
        #[arg(long)]
        period_days: Option<i64>,
        #[arg(long)]
        max_machines: Option<i64>,
        #[arg(long = "feature")]
        features: Vec<String>,
        #[arg(long)]
        customer: Option<i64>,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long, default_value_t = 1)]
        quantity: i64,
    },
    List {
        #[arg(long)]
        product: Option<i64>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Show a license by id or key.
    Show {
        id_or_key: String,
    },
    Block {
        id: i64,
    },
    Unblock {
        id: i64,
    },
    Extend {
        id: i64,
        #[arg(long)]
        days: i64,
    },
    /// Issue a signed offline license file for a machine that cannot reach the server.
    File {
        /// The license key.
        #[arg(long)]
        key: String,
        /// The machine code the licensed program shows on that machine.
        #[arg(long)]
        machine: String,
        /// Days the file stays valid (default 30).
        #[arg(long)]
        ttl_days: Option<i64>,
        /// Encrypt the file so that only that machine can read it.
        #[arg(long)]
        encrypt: bool,
        /// Write the file here instead of to standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyFormat {
    Ed25519,
    RsaXml,
}

fn cryptolens_method(s: &str) -> Result<Permission, String> {
    Permission::cryptolens_method(s.trim())
        .ok_or_else(|| format!("{s:?} is not a Cryptolens method Keyturn serves"))
}

fn print<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYTURN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}

async fn serve(store: &StoreArgs, stripe: &StripeArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(store, stripe, args)?;
    init_logging(settings.log_format);
    let (application, admin) = Application::build(&settings).await?;
    if let Some(token) = admin {
        println!("New installation. Admin access token (shown only this once):");
        println!("{}", token.expose());
    }
    tracing::info!(
        address = %application.local_addr(),
        database = ?application.app().store().dialect(),
        "keyturn is listening"
    );
    application.run_until(shutdown_signal()).await
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Serve(args) = &cli.command {
        return serve(&cli.store, &cli.stripe, args).await;
    }
    if let Command::Keys(KeysCommand::NewMasterKey) = &cli.command {
        println!("{}", keyturn_core::MasterKey::generate().to_text());
        return Ok(());
    }
    let settings = cli.store.resolve()?;
    let store = match cli.command {
        Command::Migrate => open_store(&settings).await?,
        _ => open_existing_store(&settings).await?,
    };
    let master_key = settings.master_key.clone();
    let app = App::new(store).with_master_key(master_key.clone());
    if !matches!(cli.command, Command::Keys(_) | Command::Migrate) {
        app.check_signing_keys()
            .await
            .context("cannot use the signing keys")?;
    }
    let me = Principal::cli();
    match cli.command {
        Command::Serve(_) => unreachable!("handled above"),
        Command::Keys(KeysCommand::NewMasterKey) => unreachable!("handled above"),
        Command::Keys(KeysCommand::Status) => print(&app.signing_keys_status().await?)?,
        Command::Keys(KeysCommand::Seal {
            old_master_key,
            old_master_key_file,
        }) => {
            let to = master_key.context(
                "give the master key to seal with (KEYTURN_MASTER_KEY or KEYTURN_MASTER_KEY_FILE)",
            )?;
            let from = keyturn::config::master_key(
                old_master_key.as_deref(),
                old_master_key_file.as_deref(),
                "KEYTURN_OLD_MASTER_KEY",
            )?;
            print(
                &app.reseal_signing_keys(&me, from.as_ref(), Some(&to))
                    .await?,
            )?
        }
        Command::Keys(KeysCommand::Unseal) => {
            let from = master_key.context(
                "give the master key the keys are sealed with (KEYTURN_MASTER_KEY or KEYTURN_MASTER_KEY_FILE)",
            )?;
            print(&app.reseal_signing_keys(&me, Some(&from), None).await?)?
        }
        Command::Migrate => eprintln!("the database schema is up to date"),
        Command::User(command) => user::run(&app, &me, command).await?,
        Command::LicenseUrl(LicenseUrlCommand::Create {
            plan,
            store,
            name,
            order_id_param,
            email_buyer,
        }) => {
            let created = app
                .create_license_url(
                    &me,
                    keyturn_app::NewLicenseUrl {
                        plan_id: plan,
                        name,
                        store,
                        order_id_param,
                        email_buyer,
                        ..Default::default()
                    },
                )
                .await?;
            eprintln!(
                "license URL {} for plan {}",
                created.url.id, created.url.plan_id
            );
            println!("{}", created.path);
        }
        Command::Form(FormCommand::Create {
            product,
            name,
            offers,
            success_text,
        }) => {
            let offers = offers
                .iter()
                .map(|o| parse_offer(o))
                .collect::<anyhow::Result<Vec<_>>>()?;
            // The form is checked against the configuration `serve` runs with.
            let providers = cli.stripe.resolve(&cli.store)?;
            let setup = keyturn_app::PaymentSetup {
                stripe: providers.stripe.as_ref().is_some_and(|s| s.api().is_some()),
                paypal: providers.paypal.is_some(),
                public_url: keyturn::config::public_url(&cli.store)?.is_some(),
            };
            let form = app
                .create_payment_form(
                    &me,
                    keyturn_app::NewPaymentForm {
                        name,
                        product_id: product,
                        offers,
                        success_text,
                        ..Default::default()
                    },
                    setup,
                )
                .await?;
            eprintln!("payment form {} ({})", form.id, form.name);
            println!("/buy/{}", form.public_id);
        }
        Command::Form(FormCommand::List) => print(&app.payment_forms(&me).await?)?,
        Command::LicenseUrl(LicenseUrlCommand::List) => print(&app.license_urls(&me).await?)?,
        Command::LicenseUrl(LicenseUrlCommand::Rotate { id }) => {
            println!("{}", app.rotate_license_url(&me, id).await?.path)
        }
        Command::Stripe(StripeCommand::Sync) => {
            let providers = cli.stripe.resolve(&cli.store)?;
            let stripe = providers
                .stripe
                .context("Stripe is not configured (set KEYTURN_STRIPE_API_KEY)")?;
            let gateway = keyturn_http::StripeGateway(stripe.api().cloned());
            print(&app.sync(&gateway).await?)?
        }
        Command::Token(TokenCommand::Create {
            admin,
            name,
            mut permissions,
            cryptolens,
            product,
            key_lock,
            feature_lock,
            expires_days,
        }) => {
            if admin {
                permissions.push(Permission::Admin);
            }
            permissions.extend(cryptolens);
            anyhow::ensure!(
                !permissions.is_empty(),
                "give --admin, --cryptolens or at least one --permission"
            );
            let expires = expires_days
                .map(|d| keyturn_core::dates::add_days("expires_days", Utc::now(), d))
                .transpose()?;
            let (details, secret) = app
                .create_token(
                    &me,
                    NewTokenInput {
                        name,
                        permissions,
                        product_id: product,
                        key_lock,
                        feature_lock,
                        expires,
                    },
                )
                .await?;
            eprintln!("created token {} ({})", details.id, details.name);
            println!("{}", secret.expose());
        }
        Command::Token(TokenCommand::List) => print(&app.tokens(&me).await?)?,
        Command::Token(TokenCommand::Revoke { id }) => print(&app.revoke_token(&me, id).await?)?,
        Command::Product(ProductCommand::Create {
            name,
            features,
            block_expired_licenses,
        }) => print(
            &app.create_product(
                &me,
                NewProductInput {
                    name,
                    features,
                    block_expired_licenses,
                    ..Default::default()
                },
            )
            .await?,
        )?,
        Command::Product(ProductCommand::Update {
            id,
            name,
            block_expired_licenses,
        }) => print(
            &app.update_product(
                &me,
                id,
                ProductPatch {
                    name,
                    block_expired_licenses,
                    ..Default::default()
                },
            )
            .await?,
        )?,
        Command::Product(ProductCommand::List) => print(&app.products(&me).await?)?,
        Command::Product(ProductCommand::PublicKey { id, format }) => match format {
            KeyFormat::Ed25519 => {
                let key = app.public_key(id).await?;
                println!("{}", key.to_base64());
                eprint!("{}", key.to_pem());
            }
            KeyFormat::RsaXml => println!("{}", app.rsa_public_key(id).await?.to_xml()),
        },
        Command::Plan(PlanCommand::Create {
            product,
            name,
            period_days,
            max_machines,
            features,
            floating_lease_seconds,
            trial,
            grace_days,
            stripe_price_ids,
            store_product_ids,
            quantity_mode,
            dunning,
            on_cancel,
        }) => print(
            &app.create_plan(
                &me,
                NewPlanInput {
                    product_id: product,
                    name,
                    period_days,
                    features,
                    max_machines,
                    floating_lease_seconds,
                    trial,
                    grace_days,
                    stripe_price_ids,
                    store_product_ids,
                    quantity_mode: match quantity_mode {
                        QuantityArg::Keys => QuantityMode::Keys,
                        QuantityArg::Seats => QuantityMode::Seats,
                    },
                    dunning: match dunning {
                        DunningArg::Keep => DunningRule::Keep,
                        DunningArg::Block => DunningRule::Block,
                    },
                    on_cancel: match on_cancel {
                        CancelArg::Block => CancelRule::Block,
                        CancelArg::Expire => CancelRule::Expire,
                    },
                },
            )
            .await?,
        )?,
        Command::Plan(PlanCommand::List { product }) => print(&app.plans(&me, product).await?)?,
        Command::Customer(CustomerCommand::Create {
            name,
            email,
            company,
        }) => print(
            &app.create_customer(
                &me,
                NewCustomerInput {
                    name,
                    email,
                    company,
                },
            )
            .await?,
        )?,
        Command::Customer(CustomerCommand::List { email }) => print(
            &app.customers(&me, email.as_deref(), &PageRequest::default())
                .await?,
        )?,
        Command::License(LicenseCommand::Create {
            product,
            plan,
            period_days,
            max_machines,
            features,
            customer,
            notes,
            quantity,
        }) => print(
            &app.create_licenses(
                &me,
                LicenseSpec {
                    product_id: product,
                    plan_id: plan,
                    period_days,
                    max_machines,
                    features: (!features.is_empty()).then_some(features),
                    customer_id: customer,
                    notes,
                    quantity: Some(quantity),
                    ..Default::default()
                },
            )
            .await?,
        )?,
        Command::License(LicenseCommand::List {
            product,
            email,
            limit,
        }) => print(
            &app.licenses(
                &me,
                LicenseQuery {
                    product_id: product,
                    email,
                    page: PageRequest {
                        cursor: None,
                        limit,
                    },
                    ..Default::default()
                },
            )
            .await?,
        )?,
        Command::License(LicenseCommand::Show { id_or_key }) => {
            let license = match id_or_key.parse::<i64>() {
                Ok(id) => app.license(&me, id).await?,
                Err(_) => app.license_by_key(&me, &id_or_key).await?,
            };
            print(&license)?
        }
        Command::License(LicenseCommand::Block { id }) => {
            print(&app.set_blocked(&me, id, true).await?)?
        }
        Command::License(LicenseCommand::Unblock { id }) => {
            print(&app.set_blocked(&me, id, false).await?)?
        }
        Command::License(LicenseCommand::Extend { id, days }) => {
            print(&app.extend_license(&me, id, Extension::Days(days)).await?)?
        }
        Command::License(LicenseCommand::File {
            key,
            machine,
            ttl_days,
            encrypt,
            output,
        }) => {
            let license = app.license_by_key(&me, &key).await?;
            let request = LicenseFileRequest {
                fingerprint: Some(machine),
                ttl_days,
                encrypt,
            };
            let text = app.issue_license_file(&me, license.id, request).await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote the license file to {}", path.display());
                }
                None => print!("{text}"),
            }
        }
    }
    app.store().close(std::time::Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await.context("keyturn failed") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
