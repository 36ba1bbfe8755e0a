//! The `keyturn` program: configuration, start-up, and the command line.

pub mod commands;
pub mod config;
pub mod import;
pub mod mail;
pub mod output;
pub mod startup;
pub mod transfer;
pub mod webhooks;

/// What this binary is: its version, the commit it was built from (`unknown` when the build
/// had no git), and the build date when the build was given one (`KEYTURN_BUILD_DATE`).
pub fn build_info() -> keyturn_http::BuildInfo {
    keyturn_http::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        commit: env!("KEYTURN_COMMIT").to_owned(),
        build_date: option_env!("KEYTURN_BUILD_DATE")
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
    }
}
