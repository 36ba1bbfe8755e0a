//! The payment pipeline at the app's boundary, on SQLite: provider-neutral events in, licenses
//! and records out, with a clock the test sets and a gateway it plays. No HTTP, no provider.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use keyturn_app::{
    App, AppError, Clock, EventEnvelope, EventOutcome, GatewayFuture, LicenseQuery, NewPaymentForm,
    NewPlanInput, NewProductInput, PaymentGateway, PaymentSetup, Principal, SyncReport,
};
use keyturn_core::payment::{Buyer, Money, Offer, OfferMode, PaymentEvent, PaymentStatus, PlanRef};
use keyturn_core::provider::{
    CheckoutRequest, CheckoutStarted, LineItems, ProviderError, ProviderEventStatus,
};
use keyturn_core::License;
use keyturn_store::{Store, StoreOptions};

/// A clock the test moves.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn at(t: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(t)))
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

/// A start well away from the real time, so nothing passes by reading the system clock.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 1, 12, 0, 0).unwrap()
}

struct Shop {
    app: App,
    clock: Arc<TestClock>,
    admin: Principal,
    /// 365 days, sold by `price_yearly`.
    yearly: i64,
    /// 30 days plus 5 days' grace, sold by `price_monthly`.
    monthly: i64,
    _dir: tempfile::TempDir,
}

async fn shop() -> Shop {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let clock = TestClock::at(t0());
    let app = App::new(store).with_clock(clock.clone());
    let admin = Principal::cli();
    let product = app
        .create_product(
            &admin,
            NewProductInput {
                name: "Editor".into(),
                features: vec!["pro".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let plan = |name: &str, days: i64, grace: i64, price: &str| NewPlanInput {
        product_id: product.id,
        name: name.into(),
        period_days: Some(days),
        features: vec!["pro".into()],
        max_machines: 2,
        grace_days: Some(grace),
        stripe_price_ids: vec![price.into()],
        ..Default::default()
    };
    let yearly = app
        .create_plan(&admin, plan("Yearly", 365, 0, "price_yearly"))
        .await
        .unwrap()
        .id;
    let monthly = app
        .create_plan(&admin, plan("Monthly", 30, 5, "price_monthly"))
        .await
        .unwrap()
        .id;
    Shop {
        app,
        clock,
        admin,
        yearly,
        monthly,
        _dir: dir,
    }
}

fn envelope(id: &str, created: DateTime<Utc>, event: Option<PaymentEvent>) -> EventEnvelope {
    EventEnvelope {
        provider: "shop".into(),
        event_id: id.into(),
        event_type: "test".into(),
        created,
        payload: "{}".into(),
        notify_buyer: false,
        subscription_label: Default::default(),
        event,
    }
}

fn sale(order: &str, price: Option<&str>, quantity: i64) -> PaymentEvent {
    PaymentEvent::Purchased {
        order: order.into(),
        buyer: Buyer {
            name: Some("Ann".into()),
            email: Some("ann@example.com".into()),
            provider_customer_id: None,
        },
        plan: PlanRef {
            provider_ids: price.into_iter().map(str::to_owned).collect(),
            ..Default::default()
        },
        quantity,
        money: Money {
            payment_intent: Some(format!("pi_{order}")),
            ..Default::default()
        },
    }
}

fn renewal(invoice: &str, period_end: DateTime<Utc>) -> PaymentEvent {
    PaymentEvent::Renewed {
        subscription: "sub_1".into(),
        invoice: invoice.into(),
        buyer: Buyer::default(),
        plan: PlanRef {
            provider_ids: vec!["price_monthly".into()],
            ..Default::default()
        },
        quantity: 1,
        period_end: Some(period_end),
        money: Money::default(),
    }
}

async fn apply(shop: &Shop, events: Vec<EventEnvelope>) -> Result<Vec<EventOutcome>, AppError> {
    shop.app.apply_provider_events(None, events).await
}

async fn licenses(shop: &Shop) -> Vec<License> {
    shop.app
        .licenses(&shop.admin, LicenseQuery::default())
        .await
        .unwrap()
        .data
}

#[tokio::test]
async fn a_sale_runs_its_plan_from_the_apps_clock_and_applies_once() {
    let shop = shop().await;
    shop.clock.advance(Duration::hours(1));
    let now = t0() + Duration::hours(1);
    let first = envelope("evt_1", t0(), Some(sale("ord_1", Some("price_yearly"), 2)));
    let outcomes = apply(&shop, vec![first.clone()]).await.unwrap();
    assert!(
        matches!(&outcomes[0], EventOutcome::Applied(_)),
        "{outcomes:?}"
    );
    let issued = licenses(&shop).await;
    assert_eq!(issued.len(), 2, "quantity 2 of a keys plan: two keys");
    for l in &issued {
        assert_eq!(l.plan_id, Some(shop.yearly));
        assert_eq!(l.created, now, "issued at the app's time");
        assert_eq!(l.expires, Some(now + Duration::days(365)));
    }
    let recorded = shop
        .app
        .provider_event(&shop.admin, "shop", "evt_1")
        .await
        .unwrap();
    assert_eq!(recorded.status, ProviderEventStatus::Applied);
    assert_eq!(recorded.received, now);

    // The same event again, and another event reporting the same order: nothing new.
    assert_eq!(
        apply(&shop, vec![first]).await.unwrap(),
        vec![EventOutcome::Duplicate]
    );
    let again = envelope("evt_2", t0(), Some(sale("ord_1", Some("price_yearly"), 2)));
    let outcome = apply(&shop, vec![again]).await.unwrap().remove(0);
    assert!(
        matches!(&outcome, EventOutcome::Applied(d) if d.contains("already fulfilled")),
        "{outcome:?}"
    );
    assert_eq!(licenses(&shop).await.len(), 2);
}

#[tokio::test]
async fn a_subscription_license_runs_to_paid_time_plus_grace_whatever_the_order() {
    let shop = shop().await;
    let p1 = t0() + Duration::days(30);
    let p2 = t0() + Duration::days(60);
    // The second invoice arrives first, then the first: paid time is the later period.
    apply(
        &shop,
        vec![
            envelope(
                "evt_in2",
                t0() + Duration::days(30),
                Some(renewal("in_2", p2)),
            ),
            envelope("evt_in1", t0(), Some(renewal("in_1", p1))),
        ],
    )
    .await
    .unwrap();
    let sub = shop
        .app
        .subscription(&shop.admin, "shop", "sub_1")
        .await
        .unwrap();
    assert_eq!(sub.plan_id, Some(shop.monthly));
    assert_eq!(sub.paid_through, Some(p2));
    let license = shop
        .app
        .license(&shop.admin, sub.license_id.unwrap())
        .await
        .unwrap();
    assert_eq!(
        license.expires,
        Some(p2 + Duration::days(5)),
        "grace on top"
    );
    assert_eq!(
        licenses(&shop).await.len(),
        1,
        "one license per subscription"
    );
    let metadata = &license.metadata;
    assert_eq!(metadata["provider"], "shop");
    assert_eq!(metadata["subscription_id"], "sub_1");
    let payments = shop
        .app
        .payments(&shop.admin, Some(license.id), &Default::default())
        .await
        .unwrap()
        .data;
    assert_eq!(payments.len(), 2);
    assert!(payments.iter().all(|p| p.status == PaymentStatus::Paid));
}

#[tokio::test]
async fn a_failed_event_is_kept_as_failed_and_applies_when_delivered_again() {
    let shop = shop().await;
    let unsold = envelope("evt_x", t0(), Some(sale("ord_x", Some("price_new"), 1)));
    let e = apply(&shop, vec![unsold.clone()]).await.unwrap_err();
    assert!(matches!(e, AppError::Invalid(_)), "{e}");
    let recorded = shop
        .app
        .provider_event(&shop.admin, "shop", "evt_x")
        .await
        .unwrap();
    assert_eq!(recorded.status, ProviderEventStatus::Failed);
    assert!(recorded.detail.contains("price_new"), "{}", recorded.detail);
    assert!(licenses(&shop).await.is_empty());

    shop.app
        .update_plan(
            &shop.admin,
            shop.yearly,
            keyturn_app::PlanPatch {
                stripe_price_ids: Some(vec!["price_yearly".into(), "price_new".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let outcome = apply(&shop, vec![unsold]).await.unwrap().remove(0);
    assert!(matches!(outcome, EventOutcome::Applied(_)), "{outcome:?}");
    assert_eq!(licenses(&shop).await.len(), 1);
}

/// A provider's API as the test plays it: what its checkouts sold, what it reports, what it
/// captures; and what it was asked.
#[derive(Default)]
struct FakeGateway {
    line_items: Option<LineItems>,
    events: Vec<EventEnvelope>,
    /// Captured amount and currency.
    capture: Option<(i64, String)>,
    asked: Mutex<Vec<String>>,
}

impl FakeGateway {
    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    fn ask(&self, what: String) {
        self.asked.lock().unwrap().push(what);
    }
}

impl PaymentGateway for FakeGateway {
    fn provider(&self) -> &str {
        "shop"
    }

    fn create_checkout<'a>(
        &'a self,
        request: &'a CheckoutRequest,
    ) -> GatewayFuture<'a, CheckoutStarted> {
        self.ask(format!(
            "checkout {} x{}",
            request.form_url, request.quantity
        ));
        let started = CheckoutStarted {
            session_id: "sess_1".into(),
            redirect_url: "https://pay.example/sess_1".into(),
            expected: request.total.clone(),
        };
        Box::pin(async move { Ok(started) })
    }

    fn capture<'a>(
        &'a self,
        order: &'a str,
        at: DateTime<Utc>,
    ) -> GatewayFuture<'a, EventEnvelope> {
        self.ask(format!("capture {order}"));
        let (amount, currency) = self.capture.clone().unwrap();
        let mut captured = envelope(&format!("return:{order}"), at, None);
        captured.event = Some(PaymentEvent::Purchased {
            order: order.into(),
            buyer: Buyer::default(),
            plan: PlanRef::default(),
            quantity: 1,
            money: Money {
                payment_intent: Some(order.into()),
                amount: Some(amount),
                currency: Some(currency),
                ..Default::default()
            },
        });
        Box::pin(async move { Ok(captured) })
    }

    fn line_items<'a>(&'a self, order: &'a str) -> GatewayFuture<'a, Option<LineItems>> {
        self.ask(format!("line items {order}"));
        let items = self.line_items.clone();
        Box::pin(async move { Ok(items) })
    }

    fn events_since<'a>(
        &'a self,
        since: Option<DateTime<Utc>>,
        _at: DateTime<Utc>,
    ) -> GatewayFuture<'a, Vec<EventEnvelope>> {
        self.ask(format!("events since {since:?}"));
        let events = self.events.clone();
        Box::pin(async move { Ok(events) })
    }
}

#[tokio::test]
async fn a_sale_that_names_nothing_is_completed_by_asking_the_provider() {
    let shop = shop().await;
    let gateway = FakeGateway {
        line_items: Some(LineItems {
            provider_ids: vec!["price_yearly".into()],
            quantity: 3,
        }),
        ..Default::default()
    };
    let outcomes = shop
        .app
        .apply_provider_events(
            Some(&gateway),
            vec![
                envelope("evt_1", t0(), Some(sale("cs_1", None, 1))),
                envelope("evt_2", t0(), Some(sale("cs_2", Some("price_monthly"), 1))),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(
        gateway.asked(),
        vec!["line items cs_1"],
        "a sale naming its price is not asked about"
    );
    let mut plans: Vec<i64> = licenses(&shop)
        .await
        .iter()
        .filter_map(|l| l.plan_id)
        .collect();
    plans.sort();
    assert_eq!(
        plans,
        vec![shop.yearly, shop.yearly, shop.yearly, shop.monthly],
        "three keys as the provider's line items say, one for the sale that named its price"
    );
}

#[tokio::test]
async fn sync_applies_what_was_missed_and_skips_what_was_handled() {
    let shop = shop().await;
    let handled = envelope("evt_1", t0(), Some(sale("ord_1", Some("price_yearly"), 1)));
    apply(&shop, vec![handled.clone()]).await.unwrap();
    let gateway = FakeGateway {
        events: vec![
            handled,
            envelope("evt_2", t0() + Duration::minutes(1), None),
            envelope(
                "evt_3",
                t0() + Duration::minutes(2),
                Some(sale("ord_3", Some("price_yearly"), 1)),
            ),
            envelope(
                "evt_4",
                t0() + Duration::minutes(3),
                Some(sale("ord_4", Some("price_unknown"), 1)),
            ),
        ],
        ..Default::default()
    };
    let report = shop.app.sync(&gateway).await.unwrap();
    assert_eq!(
        report,
        SyncReport {
            fetched: 4,
            applied: 1,
            ignored: 1,
            duplicates: 1,
            failed: 1,
        }
    );
    assert_eq!(
        gateway.asked()[0],
        format!("events since {:?}", Some(t0())),
        "from the newest event handled"
    );
    assert_eq!(licenses(&shop).await.len(), 2);
}

#[tokio::test]
async fn a_checkout_issues_keys_only_for_the_amount_the_provider_was_to_capture() {
    let shop = shop().await;
    let form = shop
        .app
        .create_payment_form(
            &shop.admin,
            NewPaymentForm {
                name: "Buy".into(),
                product_id: shop
                    .app
                    .plan(&shop.admin, shop.yearly)
                    .await
                    .unwrap()
                    .product_id,
                offers: vec![Offer {
                    plan_id: shop.yearly,
                    label: "Yearly".into(),
                    price: "€49".into(),
                    stripe_price_id: String::new(),
                    mode: OfferMode::Payment,
                    paypal_amount: Some("49.00".into()),
                    currency: Some("EUR".into()),
                }],
                ..Default::default()
            },
            PaymentSetup {
                stripe: false,
                paypal: true,
                public_url: true,
            },
        )
        .await
        .unwrap();
    let chosen = shop
        .app
        .plan_checkout(&form.public_id, 0, 2, "Ann", "ann@example.com")
        .await
        .unwrap();
    let short = FakeGateway {
        capture: Some((4900, "EUR".into())),
        ..Default::default()
    };
    let url = shop
        .app
        .start_checkout(&short, &chosen, "https://shop.example/")
        .await
        .unwrap();
    assert_eq!(url, "https://pay.example/sess_1");
    assert_eq!(
        short.asked(),
        vec![format!(
            "checkout https://shop.example/buy/{} x2",
            form.public_id
        )]
    );
    let outcome = shop
        .app
        .checkout_outcome(&form.public_id, "sess_1")
        .await
        .unwrap();
    assert_eq!(outcome.checkout.amount, Some(9800), "two at 49.00");
    // The provider took one unit's price for two: nothing is issued.
    let e = shop
        .app
        .complete_checkout(&short, &outcome.checkout)
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::Invalid(_)), "{e}");
    assert!(licenses(&shop).await.is_empty());

    let full = FakeGateway {
        capture: Some((9800, "eur".into())),
        ..Default::default()
    };
    shop.app
        .complete_checkout(&full, &outcome.checkout)
        .await
        .unwrap();
    let keys = shop
        .app
        .checkout_outcome(&form.public_id, "sess_1")
        .await
        .unwrap()
        .keys;
    assert_eq!(keys.len(), 2);
}

#[tokio::test]
async fn a_provider_that_cannot_do_a_call_says_so() {
    struct Minimal;
    impl PaymentGateway for Minimal {
        fn provider(&self) -> &str {
            "minimal"
        }
        fn create_checkout<'a>(
            &'a self,
            _: &'a CheckoutRequest,
        ) -> GatewayFuture<'a, CheckoutStarted> {
            Box::pin(async { Err(ProviderError::Unavailable("down".into())) })
        }
    }
    let shop = shop().await;
    let e = shop.app.sync(&Minimal).await.unwrap_err();
    assert!(
        matches!(&e, AppError::Provider(ProviderError::Unsupported(m)) if m.contains("minimal")),
        "{e}"
    );
}

#[tokio::test]
async fn a_providers_customer_id_names_a_customer_of_that_provider_only() {
    let shop = shop().await;
    let bought = |provider: &str, id: &str, order: &str, email: Option<&str>| {
        let mut e = envelope(id, t0(), Some(sale(order, Some("price_yearly"), 1)));
        e.provider = provider.into();
        if let Some(PaymentEvent::Purchased { buyer, .. }) = &mut e.event {
            buyer.provider_customer_id = Some("cus_1".into());
            buyer.email = email.map(str::to_owned);
            buyer.name = None;
        }
        e
    };
    apply(
        &shop,
        vec![
            bought("shop", "evt_1", "ord_1", Some("ann@example.com")),
            // Another provider's cus_1 is someone else.
            bought("market", "evt_2", "ord_2", Some("bo@example.com")),
            // The first provider's cus_1 again, without an email: Ann.
            bought("shop", "evt_3", "ord_3", None),
        ],
    )
    .await
    .unwrap();
    let mut owners = Vec::new();
    for l in licenses(&shop).await {
        let customer = shop
            .app
            .customer(&shop.admin, l.customer_id.unwrap())
            .await
            .unwrap();
        owners.push((
            l.metadata["order"].as_str().unwrap().to_owned(),
            customer.email,
        ));
    }
    owners.sort();
    let email = |e: &str| Some(e.to_owned());
    assert_eq!(
        owners,
        vec![
            ("ord_1".to_owned(), email("ann@example.com")),
            ("ord_2".to_owned(), email("bo@example.com")),
            ("ord_3".to_owned(), email("ann@example.com")),
        ]
    );
}
