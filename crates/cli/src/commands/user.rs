//! `keyturn user`: the people who sign in to the admin console.

use std::io::Read;

use anyhow::Context as _;
use clap::Subcommand;
use keyturn_core::Role;

use super::Context;

#[derive(Subcommand)]
pub enum User {
    /// Create a console user. The password comes from --password-stdin (preferred: it stays
    /// out of the shell history and the process list) or --password.
    Create {
        #[arg(long)]
        email: String,
        /// owner, admin, support, sales or read_only.
        #[arg(long)]
        role: Role,
        /// Limit the user to one product (by id).
        #[arg(long)]
        product: Option<i64>,
        /// Read the password from standard input (up to the first line break).
        #[arg(long, conflicts_with = "password")]
        password_stdin: bool,
        #[arg(long)]
        password: Option<String>,
    },
}

impl User {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self {
            User::Create {
                email,
                role,
                product,
                password_stdin,
                password,
            } => {
                let password = match (password_stdin, password) {
                    (true, _) => {
                        let mut text = String::new();
                        std::io::stdin()
                            .take(4096)
                            .read_to_string(&mut text)
                            .context("cannot read the password from standard input")?;
                        text.lines().next().unwrap_or_default().to_owned()
                    }
                    (false, Some(p)) => p,
                    (false, None) => {
                        anyhow::bail!("give the password with --password-stdin or --password")
                    }
                };
                let s = ctx.app().await?;
                let user = s
                    .app
                    .create_console_user(&s.me, &email, &password, role, product)
                    .await?;
                eprintln!(
                    "created console user {} ({}){}; sign in at /admin",
                    user.email,
                    user.role,
                    user.product_id
                        .map(|p| format!(", limited to product {p}"))
                        .unwrap_or_default()
                );
            }
        }
        Ok(())
    }
}
