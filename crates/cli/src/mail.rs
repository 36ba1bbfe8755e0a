//! Sends the outbox over SMTP. Runs beside the server; several nodes may run it at once, since
//! each message is leased to one sender at a time.

use std::time::Duration;

use keyturn_app::{App, QueuedMail};
use lettre::message::header::ContentType;
use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{MailSettings, SmtpTls};

const BATCH: i64 = 20;
const LEASE: Duration = Duration::from_secs(120);

pub(crate) type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub(crate) fn transport(s: &MailSettings) -> anyhow::Result<Option<Transport>> {
    let Some(host) = &s.smtp_host else {
        return Ok(None);
    };
    let builder = match s.tls {
        SmtpTls::None => Transport::builder_dangerous(host),
        SmtpTls::Starttls => Transport::starttls_relay(host)?,
        SmtpTls::Tls => Transport::relay(host)?,
    };
    let mut builder = builder
        .port(s.smtp_port)
        .timeout(Some(Duration::from_secs(20)));
    if let (Some(user), Some(password)) = (&s.username, &s.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    Ok(Some(builder.build()))
}

async fn send(transport: &Transport, from: &str, mail: &QueuedMail) -> anyhow::Result<()> {
    let builder = Message::builder()
        .from(from.parse()?)
        .to(mail.to.parse()?)
        .subject(&mail.subject);
    // A mail with an HTML part goes as multipart/alternative: the text first, so a program
    // that shows only text shows it, and the HTML for those that show that.
    let message = match &mail.html_body {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            mail.body.clone(),
            html.clone(),
        ))?,
        None => builder
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())?,
    };
    transport.send(message).await?;
    Ok(())
}

/// One pass over the due messages; returns how many were sent.
async fn drain(app: &App, transport: &Transport, settings: &MailSettings) -> anyhow::Result<usize> {
    let mut sent = 0;
    for mail in app.claim_mail(BATCH, LEASE).await? {
        match send(transport, &settings.from, &mail).await {
            Ok(()) => {
                app.mail_sent(mail.id).await?;
                sent += 1;
            }
            Err(e) => {
                tracing::warn!(mail = mail.id, attempts = mail.attempts + 1, error = %e, "mail not sent; will retry");
                app.mail_failed(&mail, &e.to_string(), settings.retry_base)
                    .await?;
            }
        }
    }
    Ok(sent)
}

/// The running sender; dropping the stop signal ends it after its current pass.
pub struct MailWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MailWorker {
    pub fn start(app: App, settings: MailSettings) -> anyhow::Result<Self> {
        let transport = transport(&settings)?;
        if transport.is_none() {
            tracing::info!("no SMTP server configured: mail to buyers waits in the outbox");
        }
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            // The first reminder sweep waits one interval, as the webhook sweep does: a node
            // just started serves its requests first.
            let mut next_reminders = tokio::time::Instant::now() + settings.reminders;
            loop {
                if tokio::time::Instant::now() >= next_reminders {
                    match app.sweep_mail_reminders().await {
                        Ok(r) if r != Default::default() => {
                            tracing::debug!(?r, "reminder mails queued")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "reminder sweep failed; will retry"),
                    }
                    next_reminders = tokio::time::Instant::now() + settings.reminders;
                }
                if let Some(t) = &transport {
                    if let Err(e) = drain(&app, t, &settings).await {
                        tracing::warn!(error = %e, "mail outbox pass failed");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(settings.poll.min(settings.reminders)) => {}
                    _ = stopped.changed() => break,
                }
            }
        });
        Ok(Self { stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
