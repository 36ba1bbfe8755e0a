use clap::Subcommand;
use keyturn_app::NewCustomerInput;

use crate::output::{self, ListArgs, PageArgs};

use super::Context;

#[derive(Subcommand)]
pub enum Customer {
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        company: Option<String>,
    },
    /// List the customers, or those with one email.
    List {
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        list: ListArgs,
    },
}

impl Customer {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let s = ctx.app().await?;
        match self {
            Customer::Create {
                name,
                email,
                company,
            } => {
                let input = NewCustomerInput {
                    name,
                    email,
                    company,
                };
                output::json(&s.app.create_customer(&s.me, input).await?)
            }
            Customer::List { email, page, list } => {
                let page = s
                    .app
                    .customers(&s.me, email.as_deref(), &page.request())
                    .await?;
                output::list(
                    &list,
                    &page.data,
                    page.next_cursor.as_deref(),
                    &["id", "name", "email", "company", "created"],
                )
            }
        }
    }
}
