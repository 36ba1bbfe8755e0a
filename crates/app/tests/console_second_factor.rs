//! Two-step sign-in over time, with a clock the test moves, and across a change of the master
//! key that seals its secrets.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use keyturn_app::{App, AppError, Checked, Clock, Principal, SignIn};
use keyturn_core::totp::{step_of, TotpSecret};
use keyturn_core::{MasterKey, Role};
use keyturn_store::{Store, StoreOptions};

struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

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

fn app(store: &Store, clock: &Arc<TestClock>, master: &MasterKey) -> App {
    App::new(store.clone())
        .with_clock(clock.clone())
        .with_master_key(Some(master.clone()))
}

async fn password_step(app: &App) -> SignIn {
    app.console_sign_in("ann@example.com", PASSWORD, Some("192.0.2.1"))
        .await
        .unwrap()
}

#[tokio::test]
async fn codes_expire_with_their_step_and_secrets_follow_a_new_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(TestClock(Mutex::new(
        Utc.with_ymd_and_hms(2031, 3, 1, 12, 0, 5).unwrap(),
    )));
    let (old_key, new_key) = (MasterKey::generate(), MasterKey::generate());
    let old = app(&store, &clock, &old_key);
    old.create_console_user(
        &Principal::cli(),
        "ann@example.com",
        PASSWORD,
        Role::Admin,
        None,
    )
    .await
    .unwrap();
    let SignIn::Started(cookie) = password_step(&old).await else {
        panic!("no second factor yet")
    };
    let signed = old.console_session(cookie.expose()).await.unwrap();
    old.begin_second_factor(&signed).await.unwrap();
    let shown = old.second_factor(&signed).await.unwrap();
    let secret = TotpSecret::from_base32(&shown.enrolling.unwrap().secret).unwrap();
    // A code typed two minutes after it was shown is too old.
    let shown_at = clock.now();
    clock.advance(Duration::minutes(2));
    assert_eq!(
        old.confirm_second_factor(&signed, &secret.code_at(shown_at), None)
            .await
            .unwrap(),
        Checked::Refused
    );
    assert_eq!(
        old.confirm_second_factor(&signed, &secret.code_at(clock.now()), None)
            .await
            .unwrap(),
        Checked::Accepted
    );
    assert!(old.second_factor(&signed).await.unwrap().enabled);
    let stored = sqlx_stored(&dir).await;
    assert!(stored.starts_with("sealed:v1:"), "sealed at rest");
    assert!(!stored.contains(&secret.to_base32()));

    // The master key changes: the secret is sealed anew in the same step as the signing keys.
    let rotated = old
        .reseal_signing_keys(&Principal::cli(), Some(&old_key), Some(&new_key))
        .await
        .unwrap();
    assert_eq!(rotated.sealed + rotated.plain, 0, "no signing key yet");
    let new = app(&store, &clock, &new_key);
    clock.advance(Duration::seconds(30));
    let SignIn::SecondFactor(challenge) = password_step(&new).await else {
        panic!("the code is asked for")
    };
    // A challenge left for more than five minutes is over.
    let stale = {
        clock.advance(Duration::minutes(6));
        new.console_sign_in_code(challenge.expose(), &secret.code_at(clock.now()), None)
            .await
    };
    assert!(matches!(stale, Err(AppError::Unauthenticated)), "{stale:?}");
    let SignIn::SecondFactor(challenge) = password_step(&new).await else {
        panic!("the code is asked for")
    };
    let code = secret.code_at(clock.now());
    assert!(matches!(
        new.console_sign_in_code(challenge.expose(), &code, None)
            .await
            .unwrap(),
        SignIn::Started(_)
    ));
    // The old master key no longer opens it.
    clock.advance(Duration::seconds(30));
    let SignIn::SecondFactor(challenge) = password_step(&old).await else {
        panic!("the code is asked for")
    };
    let refused = old
        .console_sign_in_code(challenge.expose(), &secret.code_at(clock.now()), None)
        .await;
    assert!(matches!(refused, Err(AppError::Conflict(_))), "{refused:?}");
    assert!(step_of(clock.now()) > 0);
}

/// The stored second-factor secret, read straight from the database file.
async fn sqlx_stored(dir: &tempfile::TempDir) -> String {
    use sqlx::Connection;
    let url = format!("sqlite://{}", Store::sqlite_file(dir.path()).display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let stored: (String,) = sqlx::query_as("SELECT totp_secret FROM console_users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    stored.0
}
