//! Console sessions and sign-in throttling over time, with a clock the test moves.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use keyturn_app::{App, AppError, Clock, Principal, SignIn};
use keyturn_core::Role;
use keyturn_store::{Store, StoreOptions};

struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

const PASSWORD: &str = "a long enough passphrase";

async fn console() -> (App, Arc<TestClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(TestClock(Mutex::new(
        Utc.with_ymd_and_hms(2031, 3, 1, 12, 0, 0).unwrap(),
    )));
    let app = App::new(store).with_clock(clock.clone());
    app.create_console_user(
        &Principal::cli(),
        "ann@example.com",
        PASSWORD,
        Role::Support,
        None,
    )
    .await
    .unwrap();
    (app, clock, dir)
}

async fn sign_in(app: &App, password: &str) -> SignIn {
    app.console_sign_in("ann@example.com", password, Some("192.0.2.1"))
        .await
        .unwrap()
}

async fn signed_in(app: &App) -> String {
    match sign_in(app, PASSWORD).await {
        SignIn::Started(secret) => secret.expose().to_owned(),
        other => panic!("not signed in: {other:?}"),
    }
}

#[tokio::test]
async fn a_session_ends_after_an_idle_hour_or_twelve_busy_ones() {
    let (app, clock, _dir) = console().await;
    let busy = signed_in(&app).await;
    for _ in 0..13 {
        let s = app.console_session(&busy).await.unwrap();
        assert_eq!(s.user.email, "ann@example.com");
        assert_eq!(s.principal.actor.label(), "user:ann@example.com");
        clock.advance(Duration::minutes(59));
    }
    // In use every 59 minutes up to 11 h 48 min, then 59 minutes more: past the absolute
    // limit, though never idle.
    assert!(matches!(
        app.console_session(&busy).await,
        Err(AppError::Unauthenticated)
    ));

    let idle = signed_in(&app).await;
    clock.advance(Duration::minutes(59));
    app.console_session(&idle).await.unwrap();
    clock.advance(Duration::minutes(60));
    assert!(matches!(
        app.console_session(&idle).await,
        Err(AppError::Unauthenticated)
    ));
}

#[tokio::test]
async fn throttling_lasts_its_window_and_a_right_password_does_not_count() {
    let (app, clock, _dir) = console().await;
    for _ in 0..4 {
        assert!(matches!(
            sign_in(&app, "wrong password!").await,
            SignIn::Refused
        ));
    }
    // Right passwords are taken back: they never add up to a throttle.
    for _ in 0..10 {
        signed_in(&app).await;
    }
    assert!(matches!(
        sign_in(&app, "wrong password!").await,
        SignIn::Refused
    ));
    assert!(matches!(sign_in(&app, PASSWORD).await, SignIn::Throttled));
    clock.advance(Duration::minutes(16));
    signed_in(&app).await;
}

#[tokio::test]
async fn console_users_need_a_long_password_and_an_unused_email() {
    let (app, _clock, _dir) = console().await;
    let short = app
        .create_console_user(
            &Principal::cli(),
            "bob@example.com",
            "short",
            Role::Sales,
            None,
        )
        .await;
    assert!(matches!(short, Err(AppError::Invalid(_))), "{short:?}");
    let again = app
        .create_console_user(
            &Principal::cli(),
            "ANN@example.com",
            PASSWORD,
            Role::Sales,
            None,
        )
        .await;
    assert!(matches!(again, Err(AppError::Conflict(_))), "{again:?}");
    let nowhere = app
        .create_console_user(
            &Principal::cli(),
            "cy@example.com",
            PASSWORD,
            Role::Sales,
            Some(99),
        )
        .await;
    assert!(matches!(nowhere, Err(AppError::Invalid(_))), "{nowhere:?}");
}
