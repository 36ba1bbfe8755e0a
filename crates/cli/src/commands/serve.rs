use std::io::IsTerminal;

use crate::config::{LogFormat, ServeArgs, Settings};
use crate::output;
use crate::startup::Application;

use super::Context;

#[derive(clap::Args)]
pub struct Serve {
    #[command(flatten)]
    args: Box<ServeArgs>,
}

impl Serve {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let settings = Settings::resolve(&ctx.store, &self.args)?;
        init_logging(settings.log_format);
        let (application, admin) = Application::build(&settings).await?;
        if let Some(token) = admin {
            let shown =
                output::line("New installation. Admin access token (shown only this once):")
                    .and_then(|()| output::line(token.expose()));
            // Nobody reads a closed standard output: serving goes on (`keyturn token create
            // --admin` makes another token).
            if let Err(e) = shown {
                tracing::warn!(error = %e, "cannot print the admin token");
            }
        }
        tracing::info!(
            address = %application.local_addr(),
            scheme = if application.serves_tls() { "https" } else { "http" },
            database = ?application.app().store().dialect(),
            "keyturn is listening"
        );
        if let Some(address) = application.metrics_addr() {
            tracing::info!(%address, "metrics are served on their own listener");
        }
        if let Some(address) = application.redirect_addr() {
            tracing::info!(%address, "plain HTTP there is redirected to https");
        }
        application.run_until(shutdown_signal()).await
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYTURN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Whether logs are coloured: only on a terminal (a file or a log collector would keep the
/// escape codes as text), and never when `NO_COLOR` is set to anything but nothing
/// (https://no-color.org).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
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

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
