use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use keyturn_core::MasterKey;
use keyturn_store::Synchronous;

use super::*;

/// `serve` and its options, as the binary declares them.
#[derive(Parser)]
struct Serve {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    serve: ServeArgs,
}

/// Parses `args` with the file layered in, reading no environment variable (so the tests see
/// only what they give).
fn parse(args: &[&str]) -> anyhow::Result<Serve> {
    let cmd = Serve::command().mut_args(|a| a.env(None));
    layers::parse_with(cmd, std::iter::once("keyturn").chain(args.iter().copied()))
}

fn resolve(args: &[&str]) -> anyhow::Result<Settings> {
    let cli = parse(args)?;
    Settings::resolve(&cli.store, &cli.serve)
}

fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyturn.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn flags_beat_the_file_and_the_file_beats_defaults() {
    let (_dir, path) =
        file("listen = \"127.0.0.1:9000\"\nrate_limit_per_minute = 5\ndata_dir = \"/srv/kt\"\n");
    let path = path.to_str().unwrap();
    let s = resolve(&["--config", path, "--rate-limit-per-minute", "7"]).unwrap();
    assert_eq!(s.listen.port(), 9000);
    assert_eq!(s.http.rate_limit_per_minute, 7);
    assert_eq!(s.store.data_dir, PathBuf::from("/srv/kt"));
    assert_eq!(s.http.rate_limit_burst, 60);
}

#[test]
fn defaults_apply_without_a_file() {
    let s = resolve(&[]).unwrap();
    assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
    assert_eq!(s.store.data_dir, PathBuf::from("keyturn-data"));
    assert!(s.store.database_url.is_none());
    assert!(
        s.providers.stripe.is_none(),
        "Stripe is off until configured"
    );
    assert!(s.providers.paypal.is_none());
    assert_eq!(s.store.options.max_connections, 16);
    assert_eq!(s.store.options.timeout, Duration::from_secs(2));
    assert_eq!(s.store.options.sqlite_synchronous, Synchronous::Normal);
    assert_eq!(s.http.connections.shutdown_grace, Duration::from_secs(10));
    assert_eq!(s.http.connections.max_connections_per_ip, 256);
    assert_eq!(s.signature_reuse, Duration::from_secs(900));
    assert_eq!(s.mail.smtp_port, 587, "starttls by default");
    assert_eq!(s.mail.from, "keyturn@localhost");
    assert_eq!(s.providers.stores.tolerance, Duration::from_secs(300));
    assert!(!s.providers.stores.email_buyers);
}

#[test]
fn fault_limits_come_from_flags_and_the_file() {
    let (_dir, path) = file(
        "database_timeout_ms = 500\nsqlite_synchronous = \"full\"\nshutdown_grace_seconds = 3\n\
         header_read_timeout_seconds = 4\nidle_timeout_seconds = 5\nmax_connections_per_ip = 0\n",
    );
    let s = resolve(&[
        "--config",
        path.to_str().unwrap(),
        "--shutdown-grace-seconds",
        "1",
    ])
    .unwrap();
    assert_eq!(s.store.options.timeout, Duration::from_millis(500));
    assert_eq!(s.store.options.sqlite_synchronous, Synchronous::Full);
    let c = &s.http.connections;
    assert_eq!(c.shutdown_grace, Duration::from_secs(1));
    assert_eq!(c.header_read_timeout, Duration::from_secs(4));
    assert_eq!(c.idle_timeout, Duration::from_secs(5));
    assert_eq!(c.max_connections_per_ip, 0);
}

#[test]
fn several_stripe_secrets_are_read_from_one_setting() {
    let (_dir, path) = file("stripe_webhook_secret = \"whsec_a, whsec_b\"\n");
    let cli = parse(&["--config", path.to_str().unwrap()]).unwrap();
    let args = format!("{:?}", cli.serve);
    assert!(
        !args.contains("whsec_a"),
        "secrets are never printed: {args}"
    );
    let s = Settings::resolve(&cli.store, &cli.serve).unwrap();
    let stripe = format!("{:?}", s.providers.stripe.unwrap());
    assert!(stripe.contains("secrets: 2"), "{stripe}");
    assert!(!stripe.contains("whsec_a"), "secrets are never printed");
}

#[test]
fn provider_settings_come_from_the_file_per_provider() {
    let (_dir, path) = file(
        "paypal_client_id = \"id\"\npaypal_client_secret = \"pp-secret\"\n\
         paddle_webhook_secret = \"pdl_a,pdl_b\"\ngumroad_ping_secret = \"0123456789abcdef\"\n\
         store_email_buyers = true\nstripe_webhook_tolerance = 60\nsmtp_password = \"mail-pw\"\n",
    );
    let cli = parse(&["--config", path.to_str().unwrap()]).unwrap();
    let printed = format!("{:?}", cli.serve);
    for secret in ["pp-secret", "pdl_a", "0123456789abcdef", "mail-pw"] {
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
    }
    let s = Settings::resolve(&cli.store, &cli.serve).unwrap();
    assert!(s.providers.paypal.is_some());
    assert_eq!(s.providers.stores.paddle, ["pdl_a", "pdl_b"]);
    assert_eq!(
        s.providers.stores.gumroad.as_deref(),
        Some("0123456789abcdef")
    );
    assert!(s.providers.stores.email_buyers);
    assert_eq!(s.providers.stores.tolerance, Duration::from_secs(60));
    assert!(!format!("{:?}", s.mail).contains("mail-pw"));
    // A Gumroad secret too short to be one leaves the route off.
    let (_dir, path) = file("gumroad_ping_secret = \"short\"\n");
    let s = resolve(&["--config", path.to_str().unwrap()]).unwrap();
    assert!(s.providers.stores.gumroad.is_none());
}

#[test]
fn the_master_key_comes_from_a_flag_or_a_file_and_must_be_a_key() {
    let key = MasterKey::generate();
    let (_dir, path) = file(&format!("{}\n", key.to_text()));
    let (_cdir, config) = file(&format!("master_key_file = {:?}\n", path));
    let from_file = parse(&["--config", config.to_str().unwrap()]).unwrap();
    assert_eq!(
        from_file.store.resolve().unwrap().master_key,
        Some(key.clone())
    );
    let both = parse(&[
        "--master-key",
        &key.to_text(),
        "--master-key-file",
        path.to_str().unwrap(),
    ])
    .unwrap();
    assert!(format!("{:#}", both.store.resolve().unwrap_err()).contains("not both"));
    let weak = parse(&["--master-key", "hunter2"]).unwrap();
    assert!(!format!("{:?}", weak.store).contains("hunter2"));
    let err = format!("{:#}", weak.store.resolve().unwrap_err());
    assert!(err.contains("32 random bytes"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the rejected key is not echoed: {err}"
    );
    let settings = parse(&["--master-key", &key.to_text()])
        .unwrap()
        .store
        .resolve()
        .unwrap();
    assert!(!format!("{settings:?}").contains(&key.to_text()));
    // The key itself is no file setting: it belongs in a file of its own.
    let (_dir, config) = file(&format!("master_key = {:?}\n", key.to_text()));
    let err = format!(
        "{:#}",
        parse(&["--config", config.to_str().unwrap()])
            .err()
            .unwrap()
    );
    assert!(err.contains("unknown setting `master_key`"), "{err}");
    assert!(!err.contains(&key.to_text()), "{err}");
}

#[test]
fn proxy_hops_and_the_older_boolean() {
    let hops = |text: &str, flags: &[&str]| {
        let (_dir, path) = file(text);
        let mut args = vec!["--config", path.to_str().unwrap()];
        args.extend(flags);
        resolve(&args).unwrap().http.trusted_proxy_hops
    };
    assert_eq!(hops("", &[]), 0);
    assert_eq!(hops("trust_forwarded_for = true\n", &[]), 1);
    assert_eq!(hops("trust_forwarded_for = false\n", &[]), 0);
    assert_eq!(
        hops("trust_forwarded_for = true\ntrusted_proxy_hops = 2\n", &[]),
        2
    );
    assert_eq!(
        hops("trusted_proxy_hops = 2\n", &["--trusted-proxy-hops", "3"]),
        3
    );
}

#[test]
fn unknown_keys_in_the_file_are_errors() {
    let (_dir, path) = file("lisen = \"127.0.0.1:9000\"\n");
    let err = resolve(&["--config", path.to_str().unwrap()]).unwrap_err();
    assert!(format!("{err:#}").contains("lisen"), "{err:#}");
}

#[test]
fn bad_values_in_the_file_are_errors_naming_the_setting() {
    for (text, name) in [
        ("listen = \"nowhere\"\n", "--listen"),
        ("rate_limit_per_minute = -1\n", "--rate-limit-per-minute"),
        ("smtp_tls = \"maybe\"\n", "--smtp-tls"),
        ("store_email_buyers = \"perhaps\"\n", "--store-email-buyers"),
        ("listen = [1, 2]\n", "listen"),
    ] {
        let (_dir, path) = file(text);
        let err = format!(
            "{:#}",
            resolve(&["--config", path.to_str().unwrap()]).unwrap_err()
        );
        assert!(
            err.contains("bad configuration file") && err.contains(name),
            "{text}: {err}"
        );
    }
}

/// One declaration gives all three names: `--a-b`, `KEYTURN_A_B` and `a_b`.
#[test]
fn every_setting_is_named_alike_as_flag_variable_and_file_key() {
    let all = settings();
    assert!(all.len() >= 40, "{} settings", all.len());
    for arg in &all {
        let id = arg.get_id().as_str();
        assert_eq!(arg.get_long(), Some(id.replace('_', "-").as_str()), "{id}");
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(env_name(id).as_str()),
            "{id}"
        );
    }
}

/// A secret's type keeps it out of `Debug`, and its variable's value out of `--help`.
#[test]
fn secrets_are_secret_types_and_hidden_from_help() {
    for id in [
        "master_key",
        "smtp_password",
        "stripe_webhook_secret",
        "stripe_api_key",
        "paypal_client_secret",
        "paddle_webhook_secret",
        "lemonsqueezy_webhook_secret",
        "fastspring_webhook_secret",
        "gumroad_ping_secret",
        "metrics_token",
    ] {
        let arg = settings()
            .into_iter()
            .find(|a| a.get_id() == id)
            .unwrap_or_else(|| panic!("{id} is a setting"));
        assert!(arg.is_hide_env_values_set(), "{id}");
        assert_eq!(
            arg.get_value_parser().type_id(),
            clap::builder::ValueParser::new(secret).type_id(),
            "{id} parses into a SecretString"
        );
    }
}

/// The README's Configuration table has one row per setting, with its flag, variable and file
/// key, and no row for a setting that does not exist.
#[test]
fn the_readme_table_lists_every_setting() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("a Configuration section")
        .split("\n## ")
        .next()
        .unwrap();
    let rows: Vec<Vec<String>> = section
        .lines()
        .skip_while(|l| !l.starts_with("| flag"))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect();
    let all = settings();
    let mut missing = Vec::new();
    for arg in &all {
        let id = arg.get_id().as_str();
        let want = [
            format!("`--{}`", arg.get_long().unwrap()),
            format!("`{}`", env_name(id)),
            file_key(arg).map_or("—".to_owned(), |k| format!("`{k}`")),
        ];
        if !rows.iter().any(|r| r.len() == 4 && r[..3] == want) {
            missing.push(want.join(" | "));
        }
    }
    assert!(
        missing.is_empty(),
        "README Configuration rows missing or wrong:\n{}",
        missing.join("\n")
    );
    assert_eq!(
        rows.len(),
        all.len(),
        "the table has rows for settings that do not exist"
    );
}
