//! The command line: one module per command group, each with its clap definition and what it
//! does. A group is registered with one line in `groups!` below; it gets a [`Context`] that
//! opens the installation when the group needs one, and prints through [`crate::output`].

use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::Context as _;
use clap::Parser;
use keyturn_app::{App, Principal};
use keyturn_core::MasterKey;

use crate::config::StoreArgs;
use crate::startup::{open_existing_store, open_store};

mod backup;
mod customer;
mod form;
mod import;
mod keys;
mod license;
mod license_url;
mod migrate;
mod ops;
mod plan;
mod product;
mod serve;
mod stripe;
mod token;
mod user;
mod webhooks;

/// Declares the command groups: each line is a subcommand whose type has
/// `async fn run(self, ctx: &Context) -> anyhow::Result<()>`.
macro_rules! groups {
    ($( $(#[$attr:meta])* $name:ident($group:ty), )*) => {
        #[derive(clap::Subcommand)]
        enum Command {
            $( $(#[$attr])* $name($group), )*
        }

        impl Command {
            async fn run(self, ctx: &Context) -> anyhow::Result<()> {
                match self {
                    $( Command::$name(group) => group.run(ctx).await, )*
                }
            }
        }
    };
}

groups! {
    /// Run the server.
    Serve(serve::Serve),
    /// Create or update the database schema, then exit.
    Migrate(migrate::Migrate),
    /// Access tokens for the API.
    #[command(subcommand)]
    Token(token::Token),
    /// Products and their signing keys.
    #[command(subcommand)]
    Product(product::Product),
    /// Plans (license templates).
    #[command(subcommand)]
    Plan(plan::Plan),
    /// Customers.
    #[command(subcommand)]
    Customer(customer::Customer),
    /// Licenses.
    #[command(subcommand)]
    License(license::License),
    /// Stripe integration.
    #[command(subcommand)]
    Stripe(stripe::Stripe),
    /// Hosted payment forms.
    #[command(subcommand)]
    Form(form::Form),
    /// Secret URLs that stores call after a sale to get keys.
    #[command(subcommand)]
    LicenseUrl(license_url::LicenseUrl),
    /// The products' private signing keys, and the master key that seals them.
    #[command(subcommand)]
    Keys(keys::Keys),
    /// Bring licenses over from another licensing server, or from a `keyturn export`.
    #[command(subcommand)]
    Import(import::Import),
    /// Write the licensing data to a file, to move it to another database.
    Export(backup::Export),
    /// Write a consistent copy of the installation to a file while the server runs.
    Backup(backup::Backup),
    /// Restore a backup into an empty installation.
    Restore(backup::Restore),
    /// People who sign in to the admin console (/admin).
    #[command(subcommand)]
    User(user::User),
    /// Outgoing webhooks: endpoints, their deliveries, retries and test events.
    #[command(subcommand)]
    Webhooks(webhooks::Webhooks),
    /// Check a configuration as `serve` reads it, without starting; one problem per line.
    CheckConfig(ops::CheckConfig),
    /// Check the database, SMTP, the public URL and the providers; say what is missing.
    Doctor(ops::Doctor),
}

/// Keyturn: a self-hosted software licensing server with payments built in.
#[derive(Parser)]
#[command(
    name = "keyturn",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KEYTURN_COMMIT"), ")")
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

/// What a command runs with: the store options, and the installation once opened.
pub struct Context {
    pub store: StoreArgs,
    opened: OnceLock<App>,
}

/// How a command opens the installation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// An existing installation whose signing keys can be used (most commands).
    Existing,
    /// An existing installation, whatever state its signing keys are in (`keys …`).
    KeysAsTheyAre,
    /// Created or brought up to date (`migrate`).
    CreateOrMigrate,
}

/// An opened installation, and the command line acting on it.
pub struct Session {
    pub app: App,
    pub me: Principal,
    pub master_key: Option<MasterKey>,
}

impl Context {
    pub async fn open(&self, how: Open) -> anyhow::Result<Session> {
        self.open_configured(how, |app| app).await
    }

    /// Opens the installation with the app set up by `configure` first (before it is shared).
    pub async fn open_configured(
        &self,
        how: Open,
        configure: impl FnOnce(App) -> App,
    ) -> anyhow::Result<Session> {
        let settings = self.store.resolve()?;
        let store = match how {
            Open::CreateOrMigrate => open_store(&settings).await?,
            Open::Existing | Open::KeysAsTheyAre => open_existing_store(&settings).await?,
        };
        let app = configure(App::new(store).with_master_key(settings.master_key.clone()));
        let _ = self.opened.set(app.clone());
        if how == Open::Existing {
            app.check_signing_keys()
                .await
                .context("cannot use the signing keys")?;
        }
        Ok(Session {
            app,
            me: Principal::cli(),
            master_key: settings.master_key,
        })
    }

    /// An existing installation with usable signing keys.
    pub async fn app(&self) -> anyhow::Result<Session> {
        self.open(Open::Existing).await
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context {
        store: cli.store,
        opened: OnceLock::new(),
    };
    let result = cli.command.run(&ctx).await;
    if let Some(app) = ctx.opened.get() {
        app.store().close(std::time::Duration::from_secs(5)).await;
    }
    result
}

/// The `keyturn` program.
pub async fn main() -> ExitCode {
    let cli = match crate::config::parse_from::<Cli, _, _>(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => match e.downcast::<clap::Error>() {
            // `check-config` reports a value clap refuses as a problem of the configuration,
            // with its exit code, rather than as a usage error.
            Ok(usage) if checking_config() && usage.exit_code() != 0 => {
                let text = usage.to_string();
                let first = text.lines().next().unwrap_or_default();
                eprintln!("problem: {}", first.trim_start_matches("error: "));
                return ExitCode::FAILURE;
            }
            Ok(usage) => usage.exit(),
            Err(e) if checking_config() => {
                eprintln!("problem: {e:#}");
                return ExitCode::FAILURE;
            }
            Err(e) => return failed(e),
        },
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if crate::output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => failed(e),
    }
}

/// Whether the command line asks for `check-config`.
fn checking_config() -> bool {
    std::env::args_os().skip(1).any(|a| a == "check-config")
}

fn failed(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {:#}", e.context("keyturn failed"));
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests;
