use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    keyturn::commands::main().await
}
