use clap::CommandFactory;

use super::Cli;

fn help(path: &[&str]) -> String {
    let mut cmd = Cli::command();
    cmd.build();
    let mut sub = &mut cmd;
    for name in path {
        sub = sub
            .find_subcommand_mut(name)
            .unwrap_or_else(|| panic!("no command {name}"));
    }
    sub.render_long_help().to_string()
}

#[test]
fn the_command_line_is_well_formed() {
    Cli::command().debug_assert();
}

/// A command's help lists the options it uses and no other: listing licenses takes the store
/// options and the list's own, no server, mail or provider setting.
#[test]
fn each_command_shows_only_the_settings_it_uses() {
    let list = help(&["license", "list"]);
    for used in [
        "--data-dir",
        "--database-url",
        "--config",
        "--output",
        "--limit",
        "--cursor",
    ] {
        assert!(list.contains(used), "license list lacks {used}:\n{list}");
    }
    for unused in [
        "--listen",
        "--stripe-webhook-secret",
        "--stripe-api-key",
        "--paddle-webhook-secret",
        "--gumroad-ping-secret",
        "--paypal-client-secret",
        "--smtp-host",
        "--rate-limit-per-minute",
        "--public-url",
    ] {
        assert!(
            !list.contains(unused),
            "license list shows {unused}:\n{list}"
        );
    }

    let sync = help(&["stripe", "sync"]);
    assert!(sync.contains("--stripe-api-key") && sync.contains("--stripe-api-base"));
    for unused in ["--stripe-webhook-secret", "--paypal-client-id", "--listen"] {
        assert!(
            !sync.contains(unused),
            "stripe sync shows {unused}:\n{sync}"
        );
    }

    let form = help(&["form", "create"]);
    for used in [
        "--public-url",
        "--stripe-api-key",
        "--paypal-client-id",
        "--paypal-client-secret",
    ] {
        assert!(form.contains(used), "form create lacks {used}:\n{form}");
    }
    for unused in [
        "--stripe-webhook-secret",
        "--paypal-webhook-id",
        "--listen",
        "--smtp-host",
    ] {
        assert!(
            !form.contains(unused),
            "form create shows {unused}:\n{form}"
        );
    }
}

/// `serve` takes every setting, its providers under a heading each.
#[test]
fn serve_shows_every_setting_grouped_by_provider() {
    let serve = help(&["serve"]);
    for arg in crate::config::settings() {
        if arg.is_hide_set() {
            continue;
        }
        let flag = format!("--{}", arg.get_long().unwrap());
        assert!(serve.contains(&flag), "serve lacks {flag}");
    }
    for heading in [
        "Stripe:",
        "PayPal:",
        "Paddle:",
        "Lemon Squeezy:",
        "FastSpring:",
        "Gumroad:",
        "Mail:",
    ] {
        assert!(serve.contains(heading), "serve lacks the heading {heading}");
    }
}
