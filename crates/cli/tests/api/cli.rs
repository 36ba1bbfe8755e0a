//! The `keyturn` binary as an operator uses it.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::free_port;

fn keyturn(data_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .args(args)
        .env("KEYTURN_DATA_DIR", data_dir)
        .env_remove("KEYTURN_DATABASE_URL")
        .env_remove("KEYTURN_CONFIG")
        .output()
        .expect("run keyturn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `keyturn serve`, waits for health, stops it, and returns what it printed on stdout.
async fn serve_once(data_dir: &std::path::Path) -> String {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("KEYTURN_DATA_DIR", data_dir)
        .env_remove("KEYTURN_DATABASE_URL")
        .env("KEYTURN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGTERM: the server shuts down gracefully and its stdout closes.
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(up, "the server answered /health");
    assert!(out.status.success(), "graceful shutdown exits 0");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn serve_prints_the_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = serve_once(dir.path()).await;
    assert!(first.contains("Admin access token"), "{first}");
    let token = first
        .lines()
        .find(|l| l.starts_with("kt_"))
        .expect("token line");
    assert_eq!(token.len(), 46);
    let second = serve_once(dir.path()).await;
    assert!(
        !second.contains("kt_"),
        "a restart does not mint another token: {second}"
    );
    assert!(
        dir.path().join("keyturn.db").exists(),
        "SQLite lives in the data directory"
    );
}

#[tokio::test]
async fn the_command_line_manages_tokens_products_and_licenses() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = keyturn(dir.path(), &["migrate"]);
    assert!(ok, "{err}");
    let (ok, token, _) = keyturn(dir.path(), &["token", "create", "--admin", "--name", "ops"]);
    assert!(ok);
    assert!(token.trim().starts_with("kt_"));

    let (ok, out, err) = keyturn(
        dir.path(),
        &["product", "create", "--name", "Editor", "--feature", "pro"],
    );
    assert!(ok, "{err}");
    let product: Value = serde_json::from_str(&out).unwrap();
    let product_id = product["id"].as_i64().unwrap().to_string();
    let (ok, out, _) = keyturn(
        dir.path(),
        &[
            "license",
            "create",
            "--product",
            &product_id,
            "--feature",
            "pro",
            "--period-days",
            "30",
            "--quantity",
            "2",
        ],
    );
    assert!(ok);
    let licenses: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(licenses.as_array().unwrap().len(), 2);
    let key = licenses[0]["key"].as_str().unwrap();
    let (ok, out, _) = keyturn(
        dir.path(),
        &["license", "block", &licenses[0]["id"].to_string()],
    );
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["blocked"],
        true
    );
    let (ok, out, _) = keyturn(dir.path(), &["license", "show", key]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["blocked"],
        true
    );
    let (ok, out, _) = keyturn(dir.path(), &["product", "public-key", &product_id]);
    assert!(ok);
    keyturn_core::PublicKey::from_base64(out.trim()).unwrap();
    let (ok, out, _) = keyturn(dir.path(), &["token", "list"]);
    assert!(ok);
    assert!(!out.contains(token.trim()));
    assert!(out.starts_with("ID "), "a table by default: {out}");
    assert!(out.lines().nth(1).unwrap().contains("ops"), "{out}");

    let (ok, _, err) = keyturn(dir.path(), &["license", "create", "--product", "999"]);
    assert!(!ok);
    assert!(err.contains("product_id"), "{err}");
    let (ok, _, err) = keyturn(
        dir.path(),
        &["token", "create", "--permission", "licenses:fly"],
    );
    assert!(!ok);
    assert!(err.contains("licenses:fly"), "{err}");

    // A TOML file sets the data directory when neither a flag nor the environment does.
    let cfg = dir.path().join("keyturn.toml");
    std::fs::write(
        &cfg,
        format!("data_dir = {:?}\n", dir.path().join("elsewhere")),
    )
    .unwrap();
    let (ok, out, _) = keyturn(dir.path(), &["product", "list", "--output", "json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The environment beats the file.
    let (ok, out, err) = keyturn(
        dir.path(),
        &["product", "list", "--config", cfg.to_str().unwrap()],
    );
    assert!(ok, "KEYTURN_DATA_DIR wins over the file: {err}");
    assert!(out.contains("Editor"), "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .args(["product", "list", "--config", cfg.to_str().unwrap()])
        .env_remove("KEYTURN_DATA_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("elsewhere"),
        "the TOML file's data_dir is used: {err}"
    );
}

#[test]
fn the_command_line_sets_whether_expired_licenses_answer_as_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = keyturn(dir.path(), &["migrate"]);
    assert!(ok, "{err}");
    let (ok, out, err) = keyturn(
        dir.path(),
        &[
            "product",
            "create",
            "--name",
            "Strict",
            "--block-expired-licenses",
        ],
    );
    assert!(ok, "{err}");
    let product: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(product["block_expired_licenses"], true);
    let id = product["id"].to_string();
    let (ok, out, err) = keyturn(
        dir.path(),
        &[
            "product",
            "update",
            &id,
            "--block-expired-licenses",
            "false",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["block_expired_licenses"],
        false
    );
    let (ok, out, _) = keyturn(dir.path(), &["product", "list", "--output", "json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["data"][0]["block_expired_licenses"],
        false
    );
    let (ok, _, err) = keyturn(dir.path(), &["product", "update", "99", "--name", "X"]);
    assert!(!ok);
    assert!(
        err.contains("not found") || err.contains("product"),
        "{err}"
    );
}

#[tokio::test]
async fn the_command_line_issues_license_files_for_air_gapped_machines() {
    let dir = tempfile::tempdir().unwrap();
    assert!(keyturn(dir.path(), &["migrate"]).0);
    let (ok, out, err) = keyturn(
        dir.path(),
        &["product", "create", "--name", "Editor", "--feature", "pro"],
    );
    assert!(ok, "{err}");
    let product = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_i64()
        .unwrap();
    let (ok, out, _) = keyturn(
        dir.path(),
        &[
            "license",
            "create",
            "--product",
            &product.to_string(),
            "--feature",
            "pro",
        ],
    );
    assert!(ok);
    let licenses: Value = serde_json::from_str(&out).unwrap();
    let key = licenses[0]["key"].as_str().unwrap();
    let (ok, public, _) = keyturn(dir.path(), &["product", "public-key", &product.to_string()]);
    assert!(ok);

    // The machine code comes from the customer's machine, where the program shows it.
    let machine =
        keyturn_client::Fingerprint::parse("ktfp1:mid=00000000000000aa;mac=00000000000000bb");
    let file = dir.path().join("editor.lic");
    let (ok, _, err) = keyturn(
        dir.path(),
        &[
            "license",
            "file",
            "--key",
            &key.to_lowercase(),
            "--machine",
            machine.as_str(),
            "--ttl-days",
            "90",
            "--encrypt",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let client = keyturn_client::Client::new("http://127.0.0.1:9", product, public.trim())
        .unwrap()
        .with_fingerprint(machine);
    let verified = client.load_license_file(&file, key, &["pro"]).unwrap();
    assert_eq!(verified.license.key, key);
    assert_eq!(
        (verified.valid_until - verified.issued).num_days(),
        90,
        "the TTL was applied"
    );

    // Printed to standard output when no file is named; refused for unknown keys.
    let (ok, out, _) = keyturn(
        dir.path(),
        &["license", "file", "--key", key, "--machine", "box-7"],
    );
    assert!(ok);
    assert!(out.starts_with("-----BEGIN LICENSE FILE-----"));
    let (ok, _, err) = keyturn(
        dir.path(),
        &[
            "license",
            "file",
            "--key",
            "NOPE-NOPE",
            "--machine",
            "box-7",
        ],
    );
    assert!(!ok);
    assert!(err.contains("not found"), "{err}");
}

/// A first start that fails (here: the port is taken) must not use up the one showing of the
/// admin token: the next start that does listen prints it.
#[tokio::test]
async fn a_failed_first_start_does_not_swallow_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("KEYTURN_DATA_DIR", dir.path())
        .env_remove("KEYTURN_DATABASE_URL")
        .env_remove("KEYTURN_CONFIG")
        .env("KEYTURN_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the port was taken");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen"), "{err}");
    drop(taken);
    let next = serve_once(dir.path()).await;
    assert!(
        next.contains("Admin access token") && next.lines().any(|l| l.starts_with("kt_")),
        "the first start that listens shows the token: {next}"
    );
}

/// Commands other than `serve` and `migrate` work on an existing installation: pointed at a
/// directory without one (a typo, a missing `--data-dir`), they say so and create nothing.
#[test]
fn commands_without_a_database_say_so_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("typo");
    for args in [
        &["product", "list"][..],
        &["token", "create", "--admin"],
        &["license", "show", "AAAAA-AAAAA-AAAAA-AAAAA"],
    ] {
        let (ok, out, err) = keyturn(&data, args);
        assert!(!ok, "{args:?}: {out}");
        assert!(
            err.contains("no Keyturn database") && err.contains("typo"),
            "{args:?}: {err}"
        );
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
    let (ok, _, err) = keyturn(&data, &["migrate"]);
    assert!(ok, "migrate creates the database: {err}");
    let (ok, out, err) = keyturn(&data, &["product", "list", "--output", "json"]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!({"data": [], "next_cursor": null})
    );
}

/// Every list prints one shape: a table by default, `{data, next_cursor}` with `--output json`,
/// paged with `--limit` and `--cursor` where the server pages.
#[test]
fn lists_print_a_table_or_the_page_object() {
    let dir = tempfile::tempdir().unwrap();
    assert!(keyturn(dir.path(), &["migrate"]).0);
    let (ok, out, err) = keyturn(dir.path(), &["product", "create", "--name", "Editor"]);
    assert!(ok, "{err}");
    let product = serde_json::from_str::<Value>(&out).unwrap()["id"].to_string();
    let (ok, _, err) = keyturn(
        dir.path(),
        &[
            "license",
            "create",
            "--product",
            &product,
            "--quantity",
            "3",
        ],
    );
    assert!(ok, "{err}");

    let (ok, table, _) = keyturn(dir.path(), &["license", "list"]);
    assert!(ok);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three rows: {table}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("KEY"),
        "{table}"
    );

    let page = |args: &[&str]| {
        let mut all = vec!["license", "list", "--output", "json"];
        all.extend(args);
        let (ok, out, err) = keyturn(dir.path(), &all);
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let first = page(&["--limit", "2"]);
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more to come")
        .to_owned();
    let rest = page(&["--limit", "2", "--cursor", &cursor]);
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let (ok, table, _) = keyturn(dir.path(), &["license", "list", "--limit", "2"]);
    assert!(ok);
    assert!(table.contains(&format!("--cursor {cursor}")), "{table}");

    for list in [
        &["token", "list"][..],
        &["product", "list"],
        &["plan", "list"],
        &["customer", "list"],
        &["form", "list"],
        &["license-url", "list"],
    ] {
        let mut args = list.to_vec();
        args.extend(["--output", "json"]);
        let (ok, out, err) = keyturn(dir.path(), &args);
        assert!(ok, "{list:?}: {err}");
        let value: Value = serde_json::from_str(&out).unwrap();
        assert!(value["data"].is_array(), "{list:?}: {out}");
        assert!(value.get("next_cursor").is_some(), "{list:?}: {out}");
        let (ok, out, _) = keyturn(dir.path(), list);
        assert!(ok);
        assert!(out.starts_with("ID"), "{list:?} is a table: {out}");
    }
}

/// Output into a pipe whose reader is gone ends the command quietly: no panic, no message.
#[test]
fn a_closed_pipe_ends_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    assert!(keyturn(dir.path(), &["migrate"]).0);
    let (ok, out, _) = keyturn(dir.path(), &["product", "create", "--name", "Editor"]);
    assert!(ok);
    let product = serde_json::from_str::<Value>(&out).unwrap()["id"].to_string();
    let (ok, out, _) = keyturn(dir.path(), &["license", "create", "--product", &product]);
    assert!(ok);
    let key = serde_json::from_str::<Value>(&out).unwrap()[0]["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // The reader closes before the command writes: every write meets a closed pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .args(["license", "show", &key])
        .env("KEYTURN_DATA_DIR", dir.path())
        .env_remove("KEYTURN_DATABASE_URL")
        .env_remove("KEYTURN_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "nothing on stderr: {err}");
    assert!(out.status.success(), "{:?}", out.status);

    // As an operator types it.
    let out = Command::new("bash")
        .args([
            "-c",
            "set -o pipefail; \"$KEYTURN\" license show \"$KEY\" | head -1",
        ])
        .env("KEYTURN", env!("CARGO_BIN_EXE_keyturn"))
        .env("KEY", &key)
        .env("KEYTURN_DATA_DIR", dir.path())
        .env_remove("KEYTURN_DATABASE_URL")
        .env_remove("KEYTURN_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\n");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A command's help lists only what it uses.
#[test]
fn license_list_help_shows_no_server_or_provider_settings() {
    let (ok, help, _) = keyturn(std::path::Path::new("."), &["license", "list", "--help"]);
    assert!(ok);
    assert!(
        help.contains("--output") && help.contains("--data-dir"),
        "{help}"
    );
    for unused in ["--listen", "webhook-secret", "--stripe-api-key", "--smtp"] {
        assert!(!help.contains(unused), "shows {unused}: {help}");
    }
}
