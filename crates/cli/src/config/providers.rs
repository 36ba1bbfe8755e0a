//! Payment providers' settings, one group per provider. A provider is on once its secret is
//! set; each group builds its own adapter. The Stripe and PayPal API settings are groups of
//! their own, since `stripe sync` and `form create` use them without the webhooks.

use std::time::Duration;

use clap::Args;
use keyturn_providers::paypal::PaypalAdapter;
use keyturn_providers::stripe::{StripeAdapter, StripeApi};
use keyturn_providers::{Providers, StoreSecrets};
use secrecy::{ExposeSecret, SecretString};

use super::secret;

/// All providers, as `serve` takes them.
#[derive(Debug, Clone, Args)]
pub struct ProviderArgs {
    #[command(flatten)]
    pub stripe: StripeArgs,
    #[command(flatten)]
    pub paypal: PaypalArgs,
    #[command(flatten)]
    pub paddle: PaddleArgs,
    #[command(flatten)]
    pub lemonsqueezy: LemonSqueezyArgs,
    #[command(flatten)]
    pub fastspring: FastSpringArgs,
    #[command(flatten)]
    pub gumroad: GumroadArgs,
    /// Mail new keys to the buyers of store sales (Paddle, Lemon Squeezy, FastSpring, Gumroad).
    #[arg(long, env = "KEYTURN_STORE_EMAIL_BUYERS", default_value_t = false, action = clap::ArgAction::Set)]
    pub store_email_buyers: bool,
}

impl ProviderArgs {
    pub fn resolve(&self) -> Providers {
        Providers {
            stripe: self.stripe.adapter(),
            paypal: self.paypal.adapter(),
            stores: StoreSecrets {
                paddle: list(&self.paddle.paddle_webhook_secret),
                lemonsqueezy: list(&self.lemonsqueezy.lemonsqueezy_webhook_secret),
                fastspring: list(&self.fastspring.fastspring_webhook_secret),
                gumroad: self.gumroad.secret(),
                // The stores that sign a timestamp accept the same age as Stripe.
                tolerance: self.stripe.tolerance(),
                email_buyers: self.store_email_buyers,
            },
        }
    }
}

/// Several secrets in one setting, comma-separated (while rotating).
fn list(secret: &Option<SecretString>) -> Vec<String> {
    secret
        .as_ref()
        .map(|s| s.expose_secret())
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Stripe")]
pub struct StripeArgs {
    /// Webhook signing secret(s), comma-separated while rotating (whsec_…).
    #[arg(long, env = "KEYTURN_STRIPE_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub stripe_webhook_secret: Option<SecretString>,
    /// Accepted age of a webhook's signature timestamp in seconds (Stripe, Paddle).
    #[arg(long, env = "KEYTURN_STRIPE_WEBHOOK_TOLERANCE", default_value_t = 300)]
    pub stripe_webhook_tolerance: u64,
    #[command(flatten)]
    pub api: StripeApiArgs,
}

impl StripeArgs {
    fn tolerance(&self) -> Duration {
        Duration::from_secs(self.stripe_webhook_tolerance)
    }

    fn adapter(&self) -> Option<StripeAdapter> {
        let secrets = list(&self.stripe_webhook_secret);
        let api = self.api.client();
        if secrets.is_empty() && api.is_none() {
            return None;
        }
        Some(StripeAdapter::new(secrets, self.tolerance(), api))
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Stripe")]
pub struct StripeApiArgs {
    /// Secret API key (sk_…), for fetching missed events and checkout line items.
    #[arg(long, env = "KEYTURN_STRIPE_API_KEY", hide_env_values = true, value_parser = secret)]
    pub stripe_api_key: Option<SecretString>,
    /// Stripe API base URL.
    #[arg(
        long,
        env = "KEYTURN_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: String,
}

impl StripeApiArgs {
    /// The API client, once there is a key.
    pub fn client(&self) -> Option<StripeApi> {
        let key = self.stripe_api_key.as_ref()?;
        Some(StripeApi::new(&self.stripe_api_base, key.expose_secret()))
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "PayPal")]
pub struct PaypalArgs {
    #[command(flatten)]
    pub api: PaypalApiArgs,
    /// The id of the PayPal webhook that points at /webhooks/paypal.
    #[arg(long, env = "KEYTURN_PAYPAL_WEBHOOK_ID")]
    pub paypal_webhook_id: Option<String>,
}

impl PaypalArgs {
    fn adapter(&self) -> Option<PaypalAdapter> {
        let (id, secret) = self.api.credentials()?;
        Some(PaypalAdapter::new(
            &self.api.paypal_api_base,
            id,
            secret.expose_secret(),
            self.paypal_webhook_id.clone(),
        ))
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "PayPal")]
pub struct PaypalApiArgs {
    /// PayPal REST app client id (payment forms).
    #[arg(long, env = "KEYTURN_PAYPAL_CLIENT_ID")]
    pub paypal_client_id: Option<String>,
    /// PayPal REST app secret.
    #[arg(long, env = "KEYTURN_PAYPAL_CLIENT_SECRET", hide_env_values = true, value_parser = secret)]
    pub paypal_client_secret: Option<SecretString>,
    /// PayPal API base URL.
    #[arg(
        long,
        env = "KEYTURN_PAYPAL_API_BASE",
        default_value = "https://api-m.paypal.com"
    )]
    pub paypal_api_base: String,
}

impl PaypalApiArgs {
    fn credentials(&self) -> Option<(&str, &SecretString)> {
        Some((
            self.paypal_client_id.as_deref()?,
            self.paypal_client_secret.as_ref()?,
        ))
    }

    /// Whether PayPal is set up (payment forms may offer it).
    pub fn is_set(&self) -> bool {
        self.credentials().is_some()
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Paddle")]
pub struct PaddleArgs {
    /// Paddle notification secret key(s), comma-separated.
    #[arg(long, env = "KEYTURN_PADDLE_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub paddle_webhook_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Lemon Squeezy")]
pub struct LemonSqueezyArgs {
    /// Lemon Squeezy webhook signing secret(s), comma-separated.
    #[arg(long, env = "KEYTURN_LEMONSQUEEZY_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub lemonsqueezy_webhook_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "FastSpring")]
pub struct FastSpringArgs {
    /// FastSpring webhook HMAC secret(s), comma-separated.
    #[arg(long, env = "KEYTURN_FASTSPRING_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub fastspring_webhook_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Gumroad")]
pub struct GumroadArgs {
    /// The secret part of the Gumroad ping URL (/webhooks/gumroad/<secret>), at least 16
    /// characters.
    #[arg(long, env = "KEYTURN_GUMROAD_PING_SECRET", hide_env_values = true, value_parser = secret)]
    pub gumroad_ping_secret: Option<SecretString>,
}

impl GumroadArgs {
    /// The secret, if long enough to be one (a short one leaves the route off).
    fn secret(&self) -> Option<String> {
        let secret = self.gumroad_ping_secret.as_ref()?.expose_secret();
        (secret.len() >= 16).then(|| secret.to_owned())
    }
}
