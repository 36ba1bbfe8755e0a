use super::{Context, Open};

#[derive(clap::Args)]
pub struct Migrate {}

impl Migrate {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        ctx.open(Open::CreateOrMigrate).await?;
        eprintln!("the database schema is up to date");
        Ok(())
    }
}
