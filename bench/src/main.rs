//! `keyturn-bench run` measures a Keyturn server against the ceilings of the machine it runs on,
//! all in one run, and writes the table to `bench/RESULTS.md`. `bench/run.sh` builds the release
//! binaries and runs it. See `bench/README.md`.

mod ceiling;
mod load;
mod machine;
mod report;
mod scenarios;
mod server;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "keyturn-bench", about = "Keyturn's benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every measurement and print (and write) the table.
    Run(scenarios::Options),
    /// Serve the ceilings (the harness starts this itself).
    Ceiling {
        #[arg(long)]
        listen: SocketAddr,
        /// The length of the signed ceiling's reply.
        #[arg(long, default_value_t = 512)]
        reply_bytes: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ceiling {
            listen,
            reply_bytes,
        } => tokio::runtime::Runtime::new()?.block_on(ceiling::serve(listen, reply_bytes)),
        Command::Run(options) => {
            // The load generator keeps to one thread, so that it takes the same share of the
            // machine from every server it measures.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let rows = runtime.block_on(scenarios::run_all(&options))?;
            let table = report::markdown(&rows, &options, &machine::describe());
            println!("{}", report::terminal(&rows));
            if let Some(path) = options.out.as_ref() {
                std::fs::write(path, table)?;
                println!("written to {}", path.display());
            }
            let failed: Vec<_> = rows.iter().filter(|r| r.check_failed()).collect();
            if !failed.is_empty() {
                for row in failed {
                    eprintln!("check failed: {} — {}", row.name, row.note);
                }
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
