//! A small program that does its work only when licensed.
//!
//! ```sh
//! export KEYTURN_SERVER=http://127.0.0.1:8080 KEYTURN_PRODUCT=1 KEYTURN_PUBLIC_KEY=…
//! cargo run -p keyturn-client --example gated -- machine-code
//! cargo run -p keyturn-client --example gated -- activate ABCDE-FGHIJ-KLMNO-PQRST
//! cargo run -p keyturn-client --example gated -- run ABCDE-FGHIJ-KLMNO-PQRST
//! cargo run -p keyturn-client --example gated -- deactivate ABCDE-FGHIJ-KLMNO-PQRST
//! # air-gapped: the vendor runs `keyturn license file --key … --machine <machine code>`
//! KEYTURN_LICENSE_FILE=editor.lic cargo run -p keyturn-client --example gated -- run ABCDE-…
//! ```
//!
//! State (the last good validation, for running offline up to three days, and the latest time
//! seen) is kept in `gated-state.json` in the current directory.

use std::process::ExitCode;
use std::time::Duration;

use keyturn_client::Client;

const FEATURE: &str = "pro";

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

fn client() -> Result<Client, String> {
    let product = env("KEYTURN_PRODUCT")?
        .parse()
        .map_err(|_| "KEYTURN_PRODUCT must be a product id".to_owned())?;
    let client = Client::new(
        &env("KEYTURN_SERVER")?,
        product,
        &env("KEYTURN_PUBLIC_KEY")?,
    )
    .map_err(|e| e.to_string())?;
    Ok(client
        .with_state_file("gated-state.json")
        .with_grace_period(Duration::from_secs(3 * 24 * 3600)))
}

/// Says why the program may run, or why not.
async fn licensed(client: &Client, key: &str) -> Result<String, String> {
    if let Ok(path) = std::env::var("KEYTURN_LICENSE_FILE") {
        let file = client
            .load_license_file(&path, key, &[FEATURE])
            .map_err(|e| e.to_string())?;
        return Ok(format!(
            "licensed offline by {path} until {}",
            file.valid_until
        ));
    }
    let verdict = client
        .validate(key, &[FEATURE])
        .await
        .map_err(|e| e.to_string())?;
    match (verdict.valid, verdict.offline) {
        (true, false) => Ok("licensed".into()),
        (true, true) => Ok(format!(
            "licensed offline (last confirmed {})",
            verdict.time
        )),
        (false, _) => Err(format!("{}: {}", verdict.code, verdict.detail)),
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    let client = client()?;
    match args {
        [cmd] if cmd == "machine-code" => {
            println!("{}", client.machine_code().map_err(|e| e.to_string())?);
        }
        [cmd, key] if cmd == "activate" => {
            let a = client.activate(key).await.map_err(|e| e.to_string())?;
            println!(
                "activated (machine {} of {})",
                a.activation.id, a.license.max_machines
            );
        }
        [cmd, key] if cmd == "deactivate" => {
            client.deactivate(key).await.map_err(|e| e.to_string())?;
            println!("this machine's seat is free");
        }
        [cmd, key] if cmd == "run" => {
            let why = licensed(&client, key).await?;
            eprintln!("{why}");
            println!("Hello from the pro edition.");
        }
        _ => {
            return Err(
                "usage: gated machine-code | activate KEY | run KEY | deactivate KEY".into(),
            )
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("not running: {e}");
            ExitCode::FAILURE
        }
    }
}
