//! Money is exact: what a buyer can set never picks a plan, only paid time is licensed whatever
//! order the provider delivers in, and a refund or dispute of any payment takes its license away.
//! Each test is one way a buyer or a provider's delivery order got more than was paid for.

use chrono::Utc;
use serde_json::{json, Value};

use crate::helpers::{backends, spawn_with, test_http, TestApp, TestDb};
use crate::payloads::{lemon, paddle_events, providers, send, stripe, Provider, StripeLineItems};

const DAY: i64 = 86_400;

/// A cheap plan and a dear one of another product, each sold by its own provider ids.
struct Shop {
    cheap: i64,
    monthly: i64,
    suite: i64,
}

async fn shop(app: &TestApp) -> Shop {
    let editor = app.product("Editor", &["pro"]).await;
    let suite = app.product("Suite", &["all"]).await;
    let plan = |body: Value| async move {
        let r = app.post("/v1/plans", body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_i64().unwrap()
    };
    Shop {
        cheap: plan(json!({"product_id": editor, "name": "Cheap", "period_days": 365, "max_machines": 1,
                           "stripe_price_ids": ["price_cheap"],
                           "store_product_ids": ["lemonsqueezy:111", "paddle:pri_cheap"]}))
        .await,
        monthly: plan(json!({"product_id": editor, "name": "Monthly", "period_days": 30, "max_machines": 1,
                             "grace_days": 5, "features": ["pro"], "stripe_price_ids": ["price_monthly"],
                             "store_product_ids": ["lemonsqueezy:222", "paddle:pri_monthly"]}))
        .await,
        suite: plan(json!({"product_id": suite, "name": "Suite Pro", "period_days": 365, "max_machines": 10,
                           "features": ["all"], "stripe_price_ids": ["price_suite"],
                           "store_product_ids": ["lemonsqueezy:999", "paddle:pri_suite"]}))
        .await,
    }
}

async fn licenses(app: &TestApp) -> Vec<Value> {
    app.get("/v1/licenses?limit=500").await.body["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn expires(l: &Value) -> i64 {
    l["expires"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<Utc>>()
        .unwrap()
        .timestamp()
}

fn of_subscription<'a>(ls: &'a [Value], key: &str, id: &str) -> Vec<&'a Value> {
    ls.iter().filter(|l| l["metadata"][key] == id).collect()
}

/// Runs `scenario` on a fresh server with Stripe (its API at `stripe_api`), Paddle and Lemon
/// Squeezy configured, on every backend.
macro_rules! with_shop {
    ($name:ident, $scenario:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let line_items = StripeLineItems::default();
            let api = line_items.serve().await;
            for backend in backends() {
                let db = TestDb::create(&backend).await;
                let app = spawn_with(&db, test_http(), providers(Some(&api))).await;
                let shop = shop(&app).await;
                $scenario(&app, &shop, &line_items).await;
                app.stop().await;
                db.remove().await;
            }
        }
    };
}

async fn lemon_custom_data_is_only_a_hint(app: &TestApp, shop: &Shop, _: &StripeLineItems) {
    let now = Utc::now().timestamp();
    // The cheap variant, with the dear plan's id in the checkout's custom data.
    let r = send(
        app,
        Provider::Lemon,
        &lemon::order_created(
            "7001",
            now,
            "eve@example.com",
            111,
            1,
            json!({"keyturn_plan_id": shop.suite.to_string()}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let issued = licenses(app).await;
    assert_eq!(issued.len(), 1);
    assert_eq!(
        issued[0]["plan_id"], shop.cheap,
        "the variant bought picks the plan"
    );
    assert_eq!(issued[0]["max_machines"], 1);

    // A variant no plan sells issues nothing, whatever plan the custom data names.
    let r = send(
        app,
        Provider::Lemon,
        &lemon::order_created(
            "7002",
            now,
            "eve@example.com",
            555,
            1,
            json!({"keyturn_plan_id": shop.suite}),
        ),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(licenses(app).await.len(), 1);
}
with_shop!(
    lemon_squeezy_custom_data_never_picks_the_plan,
    lemon_custom_data_is_only_a_hint
);

async fn paddle_custom_data_is_only_a_hint(app: &TestApp, shop: &Shop, _: &StripeLineItems) {
    let now = Utc::now().timestamp();
    let r = send(
        app,
        Provider::Paddle,
        &paddle_events::transaction(
            "evt_paddle_hint",
            now,
            "txn_hint",
            None,
            "eve@example.com",
            "pri_cheap",
            1,
            None,
            json!({"keyturn_plan_id": shop.suite}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let issued = licenses(app).await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["plan_id"], shop.cheap);
}
with_shop!(
    paddle_custom_data_never_picks_the_plan,
    paddle_custom_data_is_only_a_hint
);

async fn stripe_foreign_metadata_is_only_a_hint(
    app: &TestApp,
    shop: &Shop,
    line_items: &StripeLineItems,
) {
    // A Checkout Session Keyturn did not create: whoever created it set its metadata.
    line_items.sell("cs_foreign_1", "price_cheap", 1);
    let body = stripe::checkout_payment(
        "evt_foreign_1",
        Utc::now().timestamp(),
        "cs_foreign_1",
        "eve@example.com",
        json!({"keyturn_plan_id": shop.suite.to_string(), "keyturn_quantity": "5"}),
        "pi_foreign_1",
    );
    let r = send(app, Provider::Stripe, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let issued = licenses(app).await;
    assert_eq!(
        issued.len(),
        1,
        "the line items' quantity, not the metadata's"
    );
    assert_eq!(
        issued[0]["plan_id"], shop.cheap,
        "the price bought picks the plan"
    );
}
with_shop!(
    stripe_metadata_of_a_foreign_checkout_never_picks_the_plan,
    stripe_foreign_metadata_is_only_a_hint
);

/// The report: a `customer.subscription.updated` that moved to the next period, or to
/// `past_due`, delivered before the invoices, licensed the whole unpaid period.
async fn stripe_only_paid_time(app: &TestApp, shop: &Shop, _: &StripeLineItems) {
    let now = Utc::now().timestamp();
    let (p1, p2) = (now + 20 * DAY, now + 50 * DAY);
    for (sub, status) in [("sub_paid_1", "past_due"), ("sub_paid_2", "active")] {
        let early = stripe::subscription(
            &format!("evt_{sub}_moved"),
            "customer.subscription.updated",
            now - 10,
            sub,
            status,
            "price_monthly",
            1,
            (p1, p2),
            false,
        );
        let r = send(app, Provider::Stripe, &early).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let paid = stripe::invoice_paid(
            &format!("evt_{sub}_paid"),
            now - 20,
            &format!("in_{sub}"),
            sub,
            "ann@example.com",
            "price_monthly",
            1,
            (now - DAY, p1),
        );
        let r = send(app, Provider::Stripe, &paid).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let all = licenses(app).await;
        let license = of_subscription(&all, "stripe_subscription_id", sub);
        assert_eq!(license.len(), 1);
        assert_eq!(
            expires(license[0]),
            p1 + 5 * DAY,
            "{status} first: only the paid period (+ grace) is licensed"
        );
        assert_eq!(license[0]["plan_id"], shop.monthly);
    }
}
with_shop!(
    a_subscription_report_before_its_invoice_licenses_only_paid_time,
    stripe_only_paid_time
);

/// Invoices carry no subscription status: one delivered late must not make an older report of
/// the subscription look stale.
async fn stripe_status_in_any_order(app: &TestApp, _: &Shop, _: &StripeLineItems) {
    let now = Utc::now().timestamp();
    let (p1, p2) = (now + 20 * DAY, now + 50 * DAY);
    let orders: [[usize; 4]; 4] = [[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 3, 2], [1, 3, 0, 2]];
    for (n, order) in orders.iter().enumerate() {
        let sub = format!("sub_status_{n}");
        let events = [
            stripe::invoice_paid(
                &format!("evt_{sub}_1"),
                now - 40,
                &format!("in_{sub}_1"),
                &sub,
                "bo@example.com",
                "price_monthly",
                1,
                (now - DAY, p1),
            ),
            stripe::subscription(
                &format!("evt_{sub}_active"),
                "customer.subscription.updated",
                now - 30,
                &sub,
                "active",
                "price_monthly",
                1,
                (now - DAY, p1),
                false,
            ),
            stripe::subscription(
                &format!("evt_{sub}_past_due"),
                "customer.subscription.updated",
                now - 20,
                &sub,
                "past_due",
                "price_monthly",
                1,
                (p1, p2),
                false,
            ),
            // A late delivery of an invoice paid before the payment failed.
            stripe::invoice_paid(
                &format!("evt_{sub}_2"),
                now - 10,
                &format!("in_{sub}_0"),
                &sub,
                "bo@example.com",
                "price_monthly",
                1,
                (now - 2 * DAY, now - DAY),
            ),
        ];
        for i in order {
            let r = send(app, Provider::Stripe, &events[*i]).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let recorded = app.get(&format!("/v1/subscriptions/stripe/{sub}")).await;
        assert_eq!(recorded.status, 200, "{}", recorded.body);
        assert_eq!(
            recorded.body["status"], "past_due",
            "delivered in the order {order:?}"
        );
    }
}
with_shop!(
    the_subscription_record_ends_in_the_same_status_in_any_order,
    stripe_status_in_any_order
);

/// Since API version 2025-03-31 an invoice no longer names its charge or payment intent:
/// `invoice_payment.paid` links them, in whatever order the three events arrive.
async fn stripe_renewal_reversals(app: &TestApp, _: &Shop, _: &StripeLineItems) {
    let now = Utc::now().timestamp();
    let p1 = now + 20 * DAY;
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for (n, order) in orders.iter().enumerate() {
        for dispute in [false, true] {
            let sub = format!("sub_rev_{n}_{dispute}");
            let pi = format!("pi_{sub}");
            let events = [
                stripe::invoice_paid(
                    &format!("evt_{sub}_paid"),
                    now - 30,
                    &format!("in_{sub}"),
                    &sub,
                    "cy@example.com",
                    "price_monthly",
                    1,
                    (now - DAY, p1),
                ),
                stripe::invoice_payment_paid(
                    &format!("evt_{sub}_inpay"),
                    now - 29,
                    &format!("in_{sub}"),
                    &pi,
                ),
                if dispute {
                    stripe::dispute(&format!("evt_{sub}_dispute"), now - 10, &pi)
                } else {
                    stripe::charge_refunded(&format!("evt_{sub}_refund"), now - 10, &pi, true)
                },
            ];
            for i in order {
                let r = send(app, Provider::Stripe, &events[*i]).await;
                assert_eq!(r.status, 200, "{}", r.body);
            }
            let all = licenses(app).await;
            let license = of_subscription(&all, "stripe_subscription_id", &sub);
            assert_eq!(license.len(), 1);
            assert_eq!(
                license[0]["blocked"],
                true,
                "{} delivered in the order {order:?} blocks the subscription's license",
                if dispute {
                    "a dispute"
                } else {
                    "a full refund"
                }
            );
        }
    }
    // A partial refund is goodwill: the license stays.
    let sub = "sub_rev_partial";
    for body in [
        stripe::invoice_paid(
            "evt_partial_paid",
            now - 30,
            "in_partial",
            sub,
            "cy@example.com",
            "price_monthly",
            1,
            (now - DAY, p1),
        ),
        stripe::invoice_payment_paid("evt_partial_inpay", now - 29, "in_partial", "pi_partial"),
        stripe::charge_refunded("evt_partial_refund", now - 10, "pi_partial", false),
    ] {
        assert_eq!(send(app, Provider::Stripe, &body).await.status, 200);
    }
    let all = licenses(app).await;
    assert_eq!(
        of_subscription(&all, "stripe_subscription_id", sub)[0]["blocked"],
        false
    );
}
with_shop!(
    a_refund_or_dispute_of_a_subscription_payment_blocks_its_license,
    stripe_renewal_reversals
);

/// The Paddle report: `subscription.updated` before the first `transaction.completed` licensed
/// the reported, unpaid period.
async fn paddle_only_paid_time(app: &TestApp, _: &Shop, _: &StripeLineItems) {
    let now = Utc::now().timestamp();
    let (p1, p2) = (now + 20 * DAY, now + 50 * DAY);
    let moved = paddle_events::subscription(
        "evt_pdl_moved",
        "subscription.updated",
        now - 10,
        "sub_pdl_1",
        "active",
        "pri_monthly",
        1,
        (p1, p2),
        false,
        None,
    );
    assert_eq!(send(app, Provider::Paddle, &moved).await.status, 200);
    let paid = paddle_events::transaction(
        "evt_pdl_first",
        now - 20,
        "txn_pdl_first",
        Some("sub_pdl_1"),
        "bo@example.com",
        "pri_monthly",
        1,
        Some((now - DAY, p1)),
        json!({}),
    );
    let r = send(app, Provider::Paddle, &paid).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let all = licenses(app).await;
    let license = of_subscription(&all, "subscription_id", "sub_pdl_1");
    assert_eq!(license.len(), 1);
    assert_eq!(expires(license[0]), p1 + 5 * DAY);
}
with_shop!(
    paddle_subscription_updated_before_its_first_payment_licenses_only_paid_time,
    paddle_only_paid_time
);

async fn lemon_adoption_either_way(app: &TestApp, _: &Shop, _: &StripeLineItems) {
    let now = Utc::now().timestamp();
    let p1 = now + 20 * DAY;
    let sub = |event: &str, at: i64| {
        lemon::subscription(
            event,
            at,
            "8001",
            "9001",
            "bo@example.com",
            222,
            1,
            "active",
            p1,
            None,
        )
    };
    for body in [
        lemon::order_created("9001", now - 30, "bo@example.com", 222, 1, json!(null)),
        sub("subscription_updated", now - 10),
        sub("subscription_created", now - 20),
    ] {
        let r = send(app, Provider::Lemon, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let all = licenses(app).await;
    assert_eq!(all.len(), 1, "the subscription adopted its order's license");
    assert_eq!(all[0]["metadata"]["subscription_id"], "lemonsqueezy:8001");
    assert_eq!(expires(&all[0]), p1 + 5 * DAY);
}
with_shop!(
    lemon_squeezy_adopts_the_order_license_whichever_event_comes_first,
    lemon_adoption_either_way
);

/// A past_due `renews_at` is a retry date and an expired subscription's `ends_at` is not paid
/// time: a payment that names no period must not extend to them.
async fn lemon_periodless_payment(app: &TestApp, shop: &Shop, _: &StripeLineItems) {
    // Cancelled subscriptions run out here, so the expiry after `subscription_expired` shows.
    let r = app
        .patch(
            &format!("/v1/plans/{}", shop.monthly),
            json!({"on_cancel": "expire"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let now = Utc::now().timestamp();
    let p1 = now + 20 * DAY;
    for (n, status, event, reported) in [
        (1, "past_due", "subscription_updated", now + 90 * DAY),
        (2, "expired", "subscription_expired", now + 90 * DAY),
    ] {
        let (sub, order) = (format!("810{n}"), format!("910{n}"));
        let email = format!("p{n}@example.com");
        let ends = (status == "expired").then_some(reported);
        for body in [
            lemon::subscription(
                "subscription_created",
                now - 30,
                &sub,
                &order,
                &email,
                222,
                1,
                "active",
                p1,
                None,
            ),
            lemon::subscription(
                event,
                now - 20,
                &sub,
                &order,
                &email,
                222,
                1,
                status,
                reported,
                ends,
            ),
            lemon::payment_success(&format!("inv{n}"), now - 10, &sub, &email),
        ] {
            let r = send(app, Provider::Lemon, &body).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let all = licenses(app).await;
        let license = of_subscription(&all, "subscription_id", &format!("lemonsqueezy:{sub}"));
        assert_eq!(
            expires(license[0]),
            p1 + 5 * DAY,
            "after {status}: only the paid period counts"
        );
    }
}
with_shop!(
    lemon_squeezy_payment_without_a_period_extends_only_to_paid_time,
    lemon_periodless_payment
);

async fn lemon_paid_after_expiry(app: &TestApp, shop: &Shop, _: &StripeLineItems) {
    let r = app
        .patch(
            &format!("/v1/plans/{}", shop.monthly),
            json!({"on_cancel": "expire"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let now = Utc::now().timestamp();
    let (p1, p2) = (now + 20 * DAY, now + 50 * DAY);
    let event = |name: &str, at: i64, status: &str, renews: i64, ends: Option<i64>| {
        lemon::subscription(
            name,
            at,
            "8201",
            "9201",
            "dee@example.com",
            222,
            1,
            status,
            renews,
            ends,
        )
    };
    for body in [
        event("subscription_created", now - 40, "active", p1, None),
        // Delivered early: the subscription ended after its second period…
        event("subscription_expired", now - 10, "expired", p2, Some(p2)),
        // …which had been paid for.
        event("subscription_updated", now - 30, "active", p2, None),
    ] {
        let r = send(app, Provider::Lemon, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let all = licenses(app).await;
    let license = of_subscription(&all, "subscription_id", "lemonsqueezy:8201");
    assert_eq!(expires(license[0]), p2 + 5 * DAY, "the paid period is kept");
    let recorded = app
        .get("/v1/subscriptions/lemonsqueezy/lemonsqueezy:8201")
        .await;
    assert_eq!(recorded.body["status"], "canceled", "{}", recorded.body);
}
with_shop!(
    lemon_squeezy_paid_time_reported_after_an_early_expiry_counts,
    lemon_paid_after_expiry
);

async fn lemon_cancel_before_order(app: &TestApp, _: &Shop, _: &StripeLineItems) {
    let now = Utc::now().timestamp();
    let p1 = now + 20 * DAY;
    for body in [
        lemon::subscription(
            "subscription_expired",
            now - 10,
            "8301",
            "9301",
            "fay@example.com",
            222,
            1,
            "expired",
            p1,
            Some(p1),
        ),
        lemon::order_created("9301", now - 40, "fay@example.com", 222, 1, json!(null)),
        lemon::subscription(
            "subscription_created",
            now - 30,
            "8301",
            "9301",
            "fay@example.com",
            222,
            1,
            "active",
            p1,
            None,
        ),
    ] {
        let r = send(app, Provider::Lemon, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let all = licenses(app).await;
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0]["blocked"], true,
        "the cancellation recorded first is enforced on the adopted license"
    );
}
with_shop!(
    lemon_squeezy_cancellation_before_the_order_is_enforced,
    lemon_cancel_before_order
);

async fn lemon_expired_status(app: &TestApp, _: &Shop, _: &StripeLineItems) {
    let now = Utc::now().timestamp();
    let p1 = now + 20 * DAY;
    for (at, event, status) in [
        (now - 30, "subscription_created", "active"),
        (now - 10, "subscription_updated", "expired"),
    ] {
        let body = lemon::subscription(
            event,
            at,
            "8401",
            "9401",
            "gus@example.com",
            222,
            1,
            status,
            p1,
            Some(p1),
        );
        let r = send(app, Provider::Lemon, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let recorded = app
        .get("/v1/subscriptions/lemonsqueezy/lemonsqueezy:8401")
        .await;
    assert_eq!(recorded.body["status"], "canceled", "{}", recorded.body);
    assert_eq!(licenses(app).await[0]["blocked"], true);
}
with_shop!(
    lemon_squeezy_an_expired_subscription_is_not_active,
    lemon_expired_status
);

async fn lemon_partial_refund(app: &TestApp, _: &Shop, _: &StripeLineItems) {
    let now = Utc::now().timestamp();
    for body in [
        lemon::order_created("9501", now - 30, "hal@example.com", 111, 1, json!(null)),
        lemon::order_refunded("9501", now - 10, false),
    ] {
        let r = send(app, Provider::Lemon, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(licenses(app).await[0]["blocked"], false, "a partial refund");
    let full = lemon::order_refunded("9501", now - 5, true);
    assert_eq!(send(app, Provider::Lemon, &full).await.status, 200);
    assert_eq!(licenses(app).await[0]["blocked"], true, "a full refund");
}
with_shop!(
    lemon_squeezy_only_a_full_refund_blocks,
    lemon_partial_refund
);
