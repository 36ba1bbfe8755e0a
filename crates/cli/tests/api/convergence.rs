//! Payment histories converge whatever the delivery. For each provider (Stripe, Paddle, Lemon
//! Squeezy, FastSpring, Gumroad), histories are generated
//! from a seed (a purchase, renewals, a failed payment with or without recovery, a plan or
//! quantity change, a cancellation, a refund or dispute, a one-time sale beside it). Each history
//! is delivered twice to the real server as signed webhooks under ids of its own: once in the
//! order the provider made the events, once with every event sent one to three times, shuffled,
//! by several concurrent senders. Both must end in the same licenses (count, expiry, blocked
//! flag, features, machine limit) and the same subscription record; the orderly delivery licenses
//! exactly the paid time, and money that came back in full blocks what it bought.
//!
//! `KEYTURN_CONVERGENCE_SEED` repeats a run (the seed is printed, and named in every failure);
//! `KEYTURN_CONVERGENCE_HISTORIES` sets how many histories each provider gets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Months, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::{backends, spawn_with, test_http, Backend, TestApp, TestDb};
use crate::payloads::{
    fastspring_events, gumroad_pings, lemon, paddle_events, providers, send_with, stripe, Provider,
    StripeLineItems,
};

const SEED_ENV: &str = "KEYTURN_CONVERGENCE_SEED";
const HISTORIES_ENV: &str = "KEYTURN_CONVERGENCE_HISTORIES";
const DEFAULT_HISTORIES: usize = 4;
const SENDERS: usize = 4;
const DAY: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// Keys, grace 5 days, dunning keeps, cancellation blocks.
    Monthly,
    /// Seats, grace 3 days, dunning blocks, cancellation lets the license run out.
    Team,
}

impl Tier {
    fn grace(self) -> i64 {
        match self {
            Tier::Monthly => 5,
            Tier::Team => 3,
        }
    }

    fn stripe(self) -> &'static str {
        match self {
            Tier::Monthly => "price_monthly",
            Tier::Team => "price_team",
        }
    }

    fn paddle(self) -> &'static str {
        match self {
            Tier::Monthly => "pri_monthly",
            Tier::Team => "pri_team",
        }
    }

    fn lemon(self) -> i64 {
        match self {
            Tier::Monthly => 222,
            Tier::Team => 333,
        }
    }

    fn fastspring(self) -> &'static str {
        match self {
            Tier::Monthly => "editor-monthly",
            Tier::Team => "editor-team",
        }
    }

    fn gumroad(self) -> &'static str {
        match self {
            Tier::Monthly => "gum_monthly",
            Tier::Team => "gum_team",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    tier: Tier,
    quantity: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reversal {
    FullRefund,
    PartialRefund,
    Dispute,
}

#[derive(Debug, Clone, Copy)]
enum Cancel {
    AtPeriodEnd,
    Now,
}

/// One history, in provider-neutral terms.
#[derive(Debug, Clone)]
struct Scenario {
    first: Shape,
    /// Periods paid in a row (1 is the purchase).
    periods: usize,
    /// The renewal after them fails; `true` when a retry then pays it.
    failure: Option<bool>,
    /// After paying this period, the plan or quantity changes.
    change: Option<(usize, Shape)>,
    cancel: Option<Cancel>,
    /// The payment of this period comes back.
    reversal: Option<(usize, Reversal)>,
    /// Stripe: the subscription was also bought through a Checkout Session (a hint in its
    /// metadata; its line items readable or not).
    checkout: Option<bool>,
    /// A one-time sale beside it: quantity, and whether its money comes back.
    one_time: Option<(i64, Option<Reversal>)>,
}

fn shape(rng: &mut StdRng, keys_quantity: bool) -> Shape {
    let tier = if rng.gen_bool(0.5) {
        Tier::Monthly
    } else {
        Tier::Team
    };
    let quantity = if tier == Tier::Team || keys_quantity {
        rng.gen_range(1..=3)
    } else {
        1
    };
    Shape { tier, quantity }
}

fn reversal(rng: &mut StdRng) -> Reversal {
    *[
        Reversal::FullRefund,
        Reversal::PartialRefund,
        Reversal::Dispute,
    ]
    .choose(rng)
    .unwrap()
}

impl Scenario {
    /// Lemon Squeezy reports a subscription's first sale as an order whose licenses the
    /// subscription adopts: on a keys plan that order is for one key.
    fn generate(rng: &mut StdRng, provider: Provider) -> Self {
        let first = shape(rng, provider != Provider::Lemon);
        let periods = rng.gen_range(1..=4);
        Scenario {
            first,
            periods,
            failure: rng.gen_bool(0.4).then(|| rng.gen_bool(0.5)),
            change: rng
                .gen_bool(0.5)
                .then(|| (rng.gen_range(1..=periods), shape(rng, true))),
            cancel: rng.gen_bool(0.5).then(|| {
                if rng.gen_bool(0.5) {
                    Cancel::AtPeriodEnd
                } else {
                    Cancel::Now
                }
            }),
            reversal: rng
                .gen_bool(0.4)
                .then(|| (rng.gen_range(1..=periods), reversal(rng))),
            checkout: (provider == Provider::Stripe && rng.gen_bool(0.5))
                .then(|| rng.gen_bool(0.5)),
            one_time: rng.gen_bool(0.5).then(|| {
                (
                    rng.gen_range(1..=3),
                    rng.gen_bool(0.5).then(|| reversal(rng)),
                )
            }),
        }
    }

    /// Only what the store can report. FastSpring reports a return without an amount its
    /// adapter reads, so its refunds are full ones (Gumroad marks a partial refund
    /// `partially_refunded`). FastSpring's adapter reads no
    /// `subscription.updated`: a plan or quantity change shows in the next charge, so it is made
    /// before a later paid period. A Gumroad membership is one unit of one product (its tiers are
    /// not read), so it never changes; Gumroad pings nothing for a failed charge (a recovered
    /// one is a charge like any other).
    fn fit(mut self, provider: Provider) -> Self {
        let full = |r: Reversal| match r {
            Reversal::PartialRefund => Reversal::FullRefund,
            other => other,
        };
        if matches!(provider, Provider::FastSpring) {
            self.reversal = self.reversal.map(|(n, r)| (n, full(r)));
            self.one_time = self.one_time.map(|(q, r)| (q, r.map(full)));
        }
        match provider {
            Provider::FastSpring => {
                self.change = self.change.filter(|(after, _)| *after < self.periods);
            }
            Provider::Gumroad => {
                self.first.quantity = 1;
                self.change = None;
            }
            _ => {}
        }
        self
    }

    /// The shape that period `n` is paid in.
    fn shape_in(&self, n: usize) -> Shape {
        match self.change {
            Some((after, to)) if n > after => to,
            _ => self.first,
        }
    }

    fn final_shape(&self) -> Shape {
        self.change.map_or(self.first, |(_, to)| to)
    }

    fn paid_periods(&self) -> usize {
        self.periods + usize::from(self.failure == Some(true))
    }
}

/// Ends of the billing periods: `p(0)` starts the first.
struct Periods {
    start: i64,
    /// Calendar months (Gumroad: each charge pays a month from the sale) or 30 days.
    months: bool,
}

impl Periods {
    fn p(&self, n: usize) -> i64 {
        if !self.months {
            return self.start + 30 * DAY * n as i64;
        }
        // Each period is a month from the previous end, as each charge is a month from its sale.
        let mut end = DateTime::<Utc>::from_timestamp(self.start, 0).expect("a test time");
        for _ in 0..n {
            end = end.checked_add_months(Months::new(1)).expect("a test time");
        }
        end.timestamp()
    }
}

/// One copy of a history: its own ids, its events in the order the provider made them.
struct History {
    provider: Provider,
    scenario: Scenario,
    /// Where the server records the subscription.
    subscription: String,
    /// The one-time sale's order, as licenses name it in their metadata.
    one_time_order: String,
    events: Vec<String>,
}

struct Clock(i64);

impl Clock {
    fn tick(&mut self) -> i64 {
        self.0 += 10;
        self.0
    }
}

fn stripe_history(
    s: &Scenario,
    tag: &str,
    periods: &Periods,
    sold: &StripeLineItems,
    hint: i64,
) -> History {
    let sub = format!("sub_{tag}");
    let email = format!("{tag}@example.com");
    let mut t = Clock(Utc::now().timestamp() - 20_000);
    let mut ev = Vec::new();
    let mut n_evt = 0;
    let mut id = |what: &str| {
        n_evt += 1;
        format!("evt_{tag}_{n_evt}_{what}")
    };
    let period = |n: usize| (periods.p(n - 1), periods.p(n));
    let first = s.shape_in(1);
    ev.push(stripe::subscription(
        &id("created"),
        "customer.subscription.created",
        t.tick(),
        &sub,
        "active",
        first.tier.stripe(),
        first.quantity,
        period(1),
        false,
    ));
    let paid =
        |ev: &mut Vec<String>, id: &mut dyn FnMut(&str) -> String, t: &mut Clock, n: usize| {
            let sh = s.shape_in(n);
            let invoice = format!("in_{tag}_{n}");
            ev.push(stripe::invoice_paid(
                &id("paid"),
                t.tick(),
                &invoice,
                &sub,
                &email,
                sh.tier.stripe(),
                sh.quantity,
                period(n),
            ));
            ev.push(stripe::invoice_payment_paid(
                &id("inpay"),
                t.tick(),
                &invoice,
                &format!("pi_{tag}_{n}"),
            ));
        };
    paid(&mut ev, &mut id, &mut t, 1);
    if let Some(readable) = s.checkout {
        let session = format!("cs_{tag}");
        if readable {
            sold.sell(&session, first.tier.stripe(), first.quantity);
        }
        ev.push(stripe::checkout_subscription(
            &id("checkout"),
            t.tick(),
            &session,
            &sub,
            &email,
            json!({"keyturn_plan_id": hint.to_string()}),
        ));
    }
    let mut status = "active";
    for n in 1..=s.periods {
        if n > 1 {
            // Stripe moves the subscription to its next period before the invoice is paid.
            let sh = s.shape_in(n);
            ev.push(stripe::subscription(
                &id("moved"),
                "customer.subscription.updated",
                t.tick(),
                &sub,
                "active",
                sh.tier.stripe(),
                sh.quantity,
                period(n),
                false,
            ));
            paid(&mut ev, &mut id, &mut t, n);
        }
        if let Some((_, to)) = s.change.filter(|(after, _)| *after == n) {
            ev.push(stripe::subscription(
                &id("changed"),
                "customer.subscription.updated",
                t.tick(),
                &sub,
                "active",
                to.tier.stripe(),
                to.quantity,
                period(n),
                false,
            ));
        }
    }
    if let Some(recovered) = s.failure {
        let n = s.periods + 1;
        let sh = s.shape_in(n);
        ev.push(stripe::subscription(
            &id("past_due"),
            "customer.subscription.updated",
            t.tick(),
            &sub,
            "past_due",
            sh.tier.stripe(),
            sh.quantity,
            period(n),
            false,
        ));
        ev.push(stripe::invoice_failed(
            &id("failed"),
            t.tick(),
            &format!("in_{tag}_{n}"),
            &sub,
            sh.tier.stripe(),
            period(n),
        ));
        status = "past_due";
        if recovered {
            paid(&mut ev, &mut id, &mut t, n);
            ev.push(stripe::subscription(
                &id("recovered"),
                "customer.subscription.updated",
                t.tick(),
                &sub,
                "active",
                sh.tier.stripe(),
                sh.quantity,
                period(n),
                false,
            ));
            status = "active";
        }
    }
    let last = s.periods + usize::from(s.failure.is_some());
    let sh = s.final_shape();
    match s.cancel {
        Some(Cancel::AtPeriodEnd) => {
            ev.push(stripe::subscription(
                &id("cancelling"),
                "customer.subscription.updated",
                t.tick(),
                &sub,
                status,
                sh.tier.stripe(),
                sh.quantity,
                period(last),
                true,
            ));
            ev.push(stripe::subscription(
                &id("deleted"),
                "customer.subscription.deleted",
                t.tick(),
                &sub,
                "canceled",
                sh.tier.stripe(),
                sh.quantity,
                period(last),
                true,
            ));
        }
        Some(Cancel::Now) => ev.push(stripe::subscription(
            &id("deleted"),
            "customer.subscription.deleted",
            t.tick(),
            &sub,
            "canceled",
            sh.tier.stripe(),
            sh.quantity,
            period(last),
            false,
        )),
        None => {}
    }
    if let Some((n, kind)) = s.reversal {
        let pi = format!("pi_{tag}_{n}");
        ev.push(match kind {
            Reversal::Dispute => stripe::dispute(&id("dispute"), t.tick(), &pi),
            refund => stripe::charge_refunded(
                &id("refund"),
                t.tick(),
                &pi,
                refund == Reversal::FullRefund,
            ),
        });
    }
    let order = format!("cs_{tag}_once");
    if let Some((quantity, reversal)) = s.one_time {
        sold.sell(&order, "price_once", quantity);
        let pi = format!("pi_{tag}_once");
        ev.push(stripe::checkout_payment(
            &id("once"),
            t.tick(),
            &order,
            &format!("{tag}-once@example.com"),
            json!({}),
            &pi,
        ));
        match reversal {
            Some(Reversal::Dispute) => ev.push(stripe::dispute(&id("once_dispute"), t.tick(), &pi)),
            Some(refund) => ev.push(stripe::charge_refunded(
                &id("once_refund"),
                t.tick(),
                &pi,
                refund == Reversal::FullRefund,
            )),
            None => {}
        }
    }
    History {
        provider: Provider::Stripe,
        scenario: s.clone(),
        subscription: sub,
        one_time_order: order,
        events: ev,
    }
}

fn paddle_history(s: &Scenario, tag: &str, periods: &Periods) -> History {
    let sub = format!("sub_{tag}");
    let email = format!("{tag}@example.com");
    let mut t = Clock(Utc::now().timestamp() - 20_000);
    let mut ev = Vec::new();
    let mut n_evt = 0;
    let mut id = |what: &str| {
        n_evt += 1;
        format!("evt_{tag}_{n_evt}_{what}")
    };
    let period = |n: usize| (periods.p(n - 1), periods.p(n));
    let txn = |n: usize| format!("txn_{tag}_{n}");
    let first = s.shape_in(1);
    ev.push(paddle_events::subscription(
        &id("created"),
        "subscription.created",
        t.tick(),
        &sub,
        "active",
        first.tier.paddle(),
        first.quantity,
        period(1),
        false,
        Some(&txn(1)),
    ));
    let paid =
        |ev: &mut Vec<String>, id: &mut dyn FnMut(&str) -> String, t: &mut Clock, n: usize| {
            let sh = s.shape_in(n);
            ev.push(paddle_events::transaction(
                &id("paid"),
                t.tick(),
                &txn(n),
                Some(&sub),
                &email,
                sh.tier.paddle(),
                sh.quantity,
                Some(period(n)),
                json!({}),
            ));
        };
    paid(&mut ev, &mut id, &mut t, 1);
    let mut status = "active";
    for n in 1..=s.periods {
        if n > 1 {
            let sh = s.shape_in(n);
            ev.push(paddle_events::subscription(
                &id("moved"),
                "subscription.updated",
                t.tick(),
                &sub,
                "active",
                sh.tier.paddle(),
                sh.quantity,
                period(n),
                false,
                None,
            ));
            paid(&mut ev, &mut id, &mut t, n);
        }
        if let Some((_, to)) = s.change.filter(|(after, _)| *after == n) {
            ev.push(paddle_events::subscription(
                &id("changed"),
                "subscription.updated",
                t.tick(),
                &sub,
                "active",
                to.tier.paddle(),
                to.quantity,
                period(n),
                false,
                None,
            ));
        }
    }
    if let Some(recovered) = s.failure {
        let n = s.periods + 1;
        let sh = s.shape_in(n);
        ev.push(paddle_events::subscription(
            &id("past_due"),
            "subscription.past_due",
            t.tick(),
            &sub,
            "past_due",
            sh.tier.paddle(),
            sh.quantity,
            period(n),
            false,
            None,
        ));
        status = "past_due";
        if recovered {
            paid(&mut ev, &mut id, &mut t, n);
            ev.push(paddle_events::subscription(
                &id("recovered"),
                "subscription.updated",
                t.tick(),
                &sub,
                "active",
                sh.tier.paddle(),
                sh.quantity,
                period(n),
                false,
                None,
            ));
            status = "active";
        }
    }
    let last = s.periods + usize::from(s.failure.is_some());
    let sh = s.final_shape();
    match s.cancel {
        Some(Cancel::AtPeriodEnd) => {
            ev.push(paddle_events::subscription(
                &id("cancelling"),
                "subscription.updated",
                t.tick(),
                &sub,
                status,
                sh.tier.paddle(),
                sh.quantity,
                period(last),
                true,
                None,
            ));
            ev.push(paddle_events::subscription(
                &id("canceled"),
                "subscription.canceled",
                t.tick(),
                &sub,
                "canceled",
                sh.tier.paddle(),
                sh.quantity,
                period(last),
                false,
                None,
            ));
        }
        Some(Cancel::Now) => ev.push(paddle_events::subscription(
            &id("canceled"),
            "subscription.canceled",
            t.tick(),
            &sub,
            "canceled",
            sh.tier.paddle(),
            sh.quantity,
            period(last),
            false,
            None,
        )),
        None => {}
    }
    let adjust = |ev: &mut Vec<String>,
                  id: &mut dyn FnMut(&str) -> String,
                  t: &mut Clock,
                  txn: &str,
                  kind: Reversal| {
        let (action, full) = match kind {
            Reversal::Dispute => ("chargeback", true),
            Reversal::FullRefund => ("refund", true),
            Reversal::PartialRefund => ("refund", false),
        };
        ev.push(paddle_events::adjustment(
            &id("adjusted"),
            t.tick(),
            txn,
            action,
            full,
        ));
    };
    if let Some((n, kind)) = s.reversal {
        adjust(&mut ev, &mut id, &mut t, &txn(n), kind);
    }
    let order = format!("txn_{tag}_once");
    if let Some((quantity, reversal)) = s.one_time {
        ev.push(paddle_events::transaction(
            &id("once"),
            t.tick(),
            &order,
            None,
            &format!("{tag}-once@example.com"),
            "pri_once",
            quantity,
            None,
            json!({}),
        ));
        if let Some(kind) = reversal {
            adjust(&mut ev, &mut id, &mut t, &order, kind);
        }
    }
    History {
        provider: Provider::Paddle,
        scenario: s.clone(),
        subscription: sub,
        one_time_order: order,
        events: ev,
    }
}

fn lemon_history(s: &Scenario, number: i64, tag: &str, periods: &Periods) -> History {
    // Lemon Squeezy's ids are numbers.
    let sub = (10_000_000 + number).to_string();
    let order = (20_000_000 + number).to_string();
    let once = (40_000_000 + number).to_string();
    let invoice = |n: usize| (30_000_000 + number * 10 + n as i64).to_string();
    let email = format!("{tag}@example.com");
    let mut t = Clock(Utc::now().timestamp() - 20_000);
    let mut ev = Vec::new();
    let subscription =
        |event: &str, t: i64, sh: Shape, status: &str, renews: i64, ends: Option<i64>| {
            lemon::subscription(
                event,
                t,
                &sub,
                &order,
                &email,
                sh.tier.lemon(),
                sh.quantity,
                status,
                renews,
                ends,
            )
        };
    let first = s.shape_in(1);
    ev.push(lemon::order_created(
        &order,
        t.tick(),
        &email,
        first.tier.lemon(),
        first.quantity,
        json!(null),
    ));
    ev.push(subscription(
        "subscription_created",
        t.tick(),
        first,
        "active",
        periods.p(1),
        None,
    ));
    ev.push(lemon::payment_success(&invoice(1), t.tick(), &sub, &email));
    for n in 1..=s.periods {
        if n > 1 {
            ev.push(lemon::payment_success(&invoice(n), t.tick(), &sub, &email));
            ev.push(subscription(
                "subscription_updated",
                t.tick(),
                s.shape_in(n),
                "active",
                periods.p(n),
                None,
            ));
        }
        if let Some((_, to)) = s.change.filter(|(after, _)| *after == n) {
            ev.push(subscription(
                "subscription_updated",
                t.tick(),
                to,
                "active",
                periods.p(n),
                None,
            ));
        }
    }
    let mut renews = periods.p(s.periods);
    if let Some(recovered) = s.failure {
        let n = s.periods + 1;
        let sh = s.shape_in(n);
        // A past_due subscription's renews_at is the next retry, not paid time.
        ev.push(subscription(
            "subscription_updated",
            t.tick(),
            sh,
            "past_due",
            periods.p(s.periods) + 3 * DAY,
            None,
        ));
        if recovered {
            ev.push(lemon::payment_success(&invoice(n), t.tick(), &sub, &email));
            ev.push(subscription(
                "subscription_updated",
                t.tick(),
                sh,
                "active",
                periods.p(n),
                None,
            ));
            renews = periods.p(n);
        }
    }
    let sh = s.final_shape();
    match s.cancel {
        Some(Cancel::AtPeriodEnd) => {
            ev.push(subscription(
                "subscription_cancelled",
                t.tick(),
                sh,
                "cancelled",
                renews,
                Some(renews),
            ));
            ev.push(subscription(
                "subscription_expired",
                t.tick(),
                sh,
                "expired",
                renews,
                Some(renews),
            ));
        }
        Some(Cancel::Now) => ev.push(subscription(
            "subscription_expired",
            t.tick(),
            sh,
            "expired",
            renews,
            Some(t.0),
        )),
        None => {}
    }
    // Lemon Squeezy refunds orders; a chargeback of one shows as its full refund.
    if let Some((_, kind)) = s.reversal {
        ev.push(lemon::order_refunded(
            &order,
            t.tick(),
            kind != Reversal::PartialRefund,
        ));
    }
    if let Some((quantity, reversal)) = s.one_time {
        ev.push(lemon::order_created(
            &once,
            t.tick(),
            &format!("{tag}-once@example.com"),
            111,
            quantity,
            json!(null),
        ));
        if let Some(kind) = reversal {
            ev.push(lemon::order_refunded(
                &once,
                t.tick(),
                kind != Reversal::PartialRefund,
            ));
        }
    }
    History {
        provider: Provider::Lemon,
        scenario: s.clone(),
        subscription: format!("lemonsqueezy:{sub}"),
        one_time_order: once,
        events: ev,
    }
}

fn fastspring_history(s: &Scenario, tag: &str, periods: &Periods) -> History {
    use fastspring_events as fs;
    let sub = format!("fs_sub_{tag}");
    let email = format!("{tag}@example.com");
    let mut t = Clock(Utc::now().timestamp() - 20_000);
    let mut ev = Vec::new();
    let mut n_evt = 0;
    let mut id = |what: &str| {
        n_evt += 1;
        format!("fs_evt_{tag}_{n_evt}_{what}")
    };
    let order = |n: usize| format!("fs_{tag}_{n}");
    let first = s.shape_in(1);
    // The first order and the activation it brings come in one notification; the order, of a
    // subscription item only, is left to the activation.
    ev.push(fs::notification(&[
        fs::order_completed(
            &id("order"),
            t.tick(),
            &order(1),
            &email,
            first.tier.fastspring(),
            first.quantity,
            Some(&sub),
        ),
        fs::activated(
            &id("activated"),
            t.tick(),
            &sub,
            &email,
            first.tier.fastspring(),
            first.quantity,
            periods.p(1),
            &order(1),
        ),
    ]));
    let charge =
        |ev: &mut Vec<String>, id: &mut dyn FnMut(&str) -> String, t: &mut Clock, n: usize| {
            let sh = s.shape_in(n);
            ev.push(fs::notification(&[fs::charge_completed(
                &id("charge"),
                t.tick(),
                &order(n),
                &sub,
                sh.tier.fastspring(),
                sh.quantity,
                periods.p(n),
            )]));
        };
    for n in 2..=s.periods {
        charge(&mut ev, &mut id, &mut t, n);
    }
    if let Some(recovered) = s.failure {
        let n = s.periods + 1;
        let sh = s.shape_in(n);
        ev.push(fs::notification(&[fs::charge_failed(
            &id("failed"),
            t.tick(),
            &sub,
            sh.tier.fastspring(),
        )]));
        if recovered {
            charge(&mut ev, &mut id, &mut t, n);
        }
    }
    let sh = s.final_shape();
    let deactivated = |id: &str, at: i64| {
        fs::notification(&[fs::deactivated(id, at, &sub, sh.tier.fastspring())])
    };
    match s.cancel {
        Some(Cancel::AtPeriodEnd) => {
            ev.push(fs::notification(&[fs::canceled(
                &id("canceled"),
                t.tick(),
                &sub,
                sh.tier.fastspring(),
                sh.quantity,
                periods.p(s.paid_periods()),
            )]));
            ev.push(deactivated(&id("deactivated"), t.tick()));
        }
        Some(Cancel::Now) => ev.push(deactivated(&id("deactivated"), t.tick())),
        None => {}
    }
    let reason = |kind: Reversal| match kind {
        Reversal::Dispute => "CHARGEBACK",
        _ => "REQUESTED_BY_CUSTOMER",
    };
    if let Some((n, kind)) = s.reversal {
        ev.push(fs::notification(&[fs::return_created(
            &id("return"),
            t.tick(),
            &order(n),
            reason(kind),
        )]));
    }
    let once = format!("fs_{tag}_once");
    if let Some((quantity, reversal)) = s.one_time {
        ev.push(fs::notification(&[fs::order_completed(
            &id("once"),
            t.tick(),
            &once,
            &format!("{tag}-once@example.com"),
            "editor-once",
            quantity,
            None,
        )]));
        if let Some(kind) = reversal {
            ev.push(fs::notification(&[fs::return_created(
                &id("once_return"),
                t.tick(),
                &once,
                reason(kind),
            )]));
        }
    }
    History {
        provider: Provider::FastSpring,
        scenario: s.clone(),
        subscription: format!("fastspring:{sub}"),
        one_time_order: once,
        events: ev,
    }
}

/// Gumroad pings carry the sale's own time: each charge of the membership is made when its
/// period starts, and pays a month from then.
fn gumroad_history(s: &Scenario, tag: &str, periods: &Periods) -> History {
    use gumroad_pings as gr;
    let membership = format!("gm_{tag}");
    let email = format!("{tag}@example.com");
    let mut t = Clock(Utc::now().timestamp() - 20_000);
    let mut ev = Vec::new();
    let sale = |n: usize| format!("gs_{tag}_{n}");
    let product = s.first.tier.gumroad();
    for n in 1..=s.paid_periods() {
        ev.push(gr::sale(
            &sale(n),
            periods.p(n - 1),
            &email,
            product,
            1,
            Some(&membership),
            n > 1,
        ));
    }
    match s.cancel {
        Some(Cancel::AtPeriodEnd) => {
            ev.push(gr::membership("cancellation", &membership, product));
            ev.push(gr::membership("subscription_ended", &membership, product));
        }
        Some(Cancel::Now) => ev.push(gr::membership("subscription_ended", &membership, product)),
        None => {}
    }
    let resource = |kind: Reversal| match kind {
        Reversal::Dispute => "dispute",
        Reversal::PartialRefund => "partial_refund",
        Reversal::FullRefund => "refund",
    };
    if let Some((n, kind)) = s.reversal {
        ev.push(gr::reversed(
            resource(kind),
            &sale(n),
            periods.p(n - 1),
            product,
        ));
    }
    let once = format!("gs_{tag}_once");
    if let Some((quantity, reversal)) = s.one_time {
        let at = t.tick();
        ev.push(gr::sale(
            &once,
            at,
            &format!("{tag}-once@example.com"),
            "gum_once",
            quantity,
            None,
            false,
        ));
        if let Some(kind) = reversal {
            ev.push(gr::reversed(resource(kind), &once, at, "gum_once"));
        }
    }
    History {
        provider: Provider::Gumroad,
        scenario: s.clone(),
        subscription: format!("gumroad:{membership}"),
        one_time_order: once,
        events: ev,
    }
}

/// The plans the histories buy.
struct Plans {
    monthly: i64,
    team: i64,
}

async fn plans(app: &TestApp) -> Plans {
    let product = app.product("Editor", &["pro", "team"]).await;
    let plan = |body: Value| async move {
        let r = app.post("/v1/plans", body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_i64().unwrap()
    };
    plan(json!({"product_id": product, "name": "Once", "period_days": 365, "max_machines": 2, "features": ["pro"],
                "stripe_price_ids": ["price_once"],
                "store_product_ids": ["paddle:pri_once", "lemonsqueezy:111", "fastspring:editor-once", "gumroad:gum_once"]}))
    .await;
    Plans {
        monthly: plan(json!({"product_id": product, "name": "Monthly", "period_days": 30, "max_machines": 1,
                             "features": ["pro"], "grace_days": Tier::Monthly.grace(), "stripe_price_ids": ["price_monthly"],
                             "store_product_ids": ["paddle:pri_monthly", "lemonsqueezy:222", "fastspring:editor-monthly",
                                                  "gumroad:gum_monthly"]}))
        .await,
        team: plan(json!({"product_id": product, "name": "Team", "period_days": 30, "max_machines": 2,
                          "features": ["pro", "team"], "grace_days": Tier::Team.grace(), "quantity_mode": "seats",
                          "dunning": "block", "on_cancel": "expire", "stripe_price_ids": ["price_team"],
                          "store_product_ids": ["paddle:pri_team", "lemonsqueezy:333", "fastspring:editor-team",
                                               "gumroad:gum_team"]}))
        .await,
    }
}

async fn all_licenses(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(&format!("/v1/licenses?limit=500{cursor}"))
            .await
            .body;
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return out,
        }
    }
}

fn timestamp(v: &Value) -> Value {
    v.as_str()
        .map(|t| json!(t.parse::<chrono::DateTime<Utc>>().unwrap().timestamp()))
        .unwrap_or(Value::Null)
}

/// What a history left: its subscription's licenses and record, its one-time sale's licenses.
fn state(history: &History, licenses: &[Value], record: &Value) -> Value {
    let summary = |l: &Value, absolute: bool| {
        let expiry = if absolute {
            timestamp(&l["expires"])
        } else {
            let created = timestamp(&l["created"]).as_i64().unwrap();
            json!((timestamp(&l["expires"]).as_i64().unwrap() - created) / DAY)
        };
        json!({"plan_id": l["plan_id"], "features": l["features"], "max_machines": l["max_machines"],
               "blocked": l["blocked"], "expiry": expiry})
    };
    let of_subscription = |l: &&Value| {
        l["metadata"]["stripe_subscription_id"] == history.subscription.as_str()
            || l["metadata"]["subscription_id"] == history.subscription.as_str()
    };
    let subscription: Vec<Value> = licenses
        .iter()
        .filter(of_subscription)
        .map(|l| summary(l, true))
        .collect();
    let mut one_time: Vec<Value> = licenses
        .iter()
        .filter(|l| {
            !of_subscription(l) && l["metadata"]["order"] == history.one_time_order.as_str()
        })
        .map(|l| summary(l, false))
        .collect();
    one_time.sort_by_key(|l| l.to_string());
    json!({
        "subscription_licenses": subscription,
        "one_time_licenses": one_time,
        "record": {"status": record["status"], "plan_id": record["plan_id"], "quantity": record["quantity"],
                   "cancel_at_period_end": record["cancel_at_period_end"],
                   "period_end": record["period_end"], "paid_through": record["paid_through"]},
    })
}

/// Sends every delivery in `queue` from `SENDERS` concurrent senders; returns the failures.
async fn deliver_concurrently(app: &TestApp, queue: Vec<(Provider, String)>) -> Vec<String> {
    let queue = Arc::new(Mutex::new(VecDeque::from(queue)));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (queue, failures) = (queue.clone(), failures.clone());
        let (http, base) = (app.http.clone(), app.base.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().pop_front();
                let Some((provider, body)) = next else { break };
                let r = send_with(&http, &base, provider, &body).await;
                if r.status != 200 {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{} {}: {body}", r.status, r.body));
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let out = failures.lock().unwrap().clone();
    out
}

async fn run(backend: &Backend, seed: u64, per_provider: usize) {
    let sold = StripeLineItems::default();
    let api = sold.serve().await;
    let db = TestDb::create(backend).await;
    let app = spawn_with(&db, test_http(), providers(Some(&api))).await;
    let plans = plans(&app).await;
    let days = Periods {
        start: Utc::now().timestamp() - 10 * DAY,
        months: false,
    };
    // Gumroad's pings are dated by their sales: all of them made before the run.
    let months = Periods {
        start: Utc::now().timestamp() - 200 * DAY,
        months: true,
    };
    let periods_of = |provider: Provider| match provider {
        Provider::Gumroad => &months,
        _ => &days,
    };
    let mut rng = StdRng::seed_from_u64(seed);
    // Each history twice, under ids of its own: [in order, shuffled].
    let mut pairs: Vec<[History; 2]> = Vec::new();
    for (p, provider) in [
        Provider::Stripe,
        Provider::Paddle,
        Provider::Lemon,
        Provider::FastSpring,
        Provider::Gumroad,
    ]
    .into_iter()
    .enumerate()
    {
        for h in 0..per_provider {
            let scenario = Scenario::generate(&mut rng, provider).fit(provider);
            let periods = periods_of(provider);
            let n = (p * 100 + h) as i64;
            let copy = |c: i64| {
                let tag = format!("h{n}c{c}");
                match provider {
                    Provider::Stripe => stripe_history(&scenario, &tag, periods, &sold, plans.team),
                    Provider::Paddle => paddle_history(&scenario, &tag, periods),
                    Provider::Lemon => lemon_history(&scenario, n * 10 + c, &tag, periods),
                    Provider::FastSpring => fastspring_history(&scenario, &tag, periods),
                    Provider::Gumroad => gumroad_history(&scenario, &tag, periods),
                }
            };
            pairs.push([copy(0), copy(1)]);
        }
    }
    for [ordered, _] in &pairs {
        for body in &ordered.events {
            let r = send_with(&app.http, &app.base, ordered.provider, body).await;
            assert_eq!(r.status, 200, "seed {seed}, in order: {} {body}", r.body);
        }
    }
    let mut queue = Vec::new();
    for [_, shuffled] in &pairs {
        for body in &shuffled.events {
            for _ in 0..rng.gen_range(1..=3) {
                queue.push((shuffled.provider, body.clone()));
            }
        }
    }
    queue.shuffle(&mut rng);
    let deliveries = queue.len();
    let failures = deliver_concurrently(&app, queue).await;
    assert!(
        failures.is_empty(),
        "seed {seed} on {backend:?}: deliveries failed: {failures:#?}"
    );

    let licenses = all_licenses(&app).await;
    for [ordered, shuffled] in &pairs {
        let record = |h: &History| {
            let path = format!("/v1/subscriptions/{}/{}", h.provider.name(), h.subscription);
            let app = &app;
            async move { app.get(&path).await.body }
        };
        let expected = state(ordered, &licenses, &record(ordered).await);
        let got = state(shuffled, &licenses, &record(shuffled).await);
        if got != expected {
            // The audit trail of the shuffled history's licenses says how it went astray.
            let mut trail = Vec::new();
            for l in licenses.iter().filter(|l| {
                l["metadata"]["subscription_id"] == shuffled.subscription.as_str()
                    || l["metadata"]["stripe_subscription_id"] == shuffled.subscription.as_str()
            }) {
                let events = app.get(&format!("/v1/licenses/{}/events", l["id"])).await;
                trail.push(json!({"license": l["id"], "events": events.body}));
            }
            panic!(
                "seed {seed} on {backend:?}: {:?} history {:#?} converged elsewhere ({SEED_ENV}={seed} repeats it)\n got: {got}\n expected: {expected}\n trail: {:#}",
                ordered.provider, ordered.scenario, Value::Array(trail)
            );
        }
        // And the orderly delivery licensed exactly the paid time.
        let s = &ordered.scenario;
        let sub_licenses = expected["subscription_licenses"].as_array().unwrap();
        assert_eq!(sub_licenses.len(), 1, "seed {seed}: {s:#?} {expected:#}");
        let last_paid = periods_of(ordered.provider).p(s.paid_periods());
        let grace = s.final_shape().tier.grace();
        assert_eq!(
            sub_licenses[0]["expiry"],
            json!(last_paid + grace * DAY),
            "seed {seed}: only paid time is licensed: {s:#?}"
        );
        let plan = match s.final_shape().tier {
            Tier::Monthly => plans.monthly,
            Tier::Team => plans.team,
        };
        assert_eq!(sub_licenses[0]["plan_id"], plan, "seed {seed}: {s:#?}");
        let one_time = expected["one_time_licenses"].as_array().unwrap();
        assert_eq!(
            one_time.len() as i64,
            s.one_time.map_or(0, |(q, _)| q),
            "seed {seed}: {s:#?}"
        );
        // Money that came back in full blocks what it bought; a partial refund blocks nothing.
        let full = |r: Reversal| r != Reversal::PartialRefund;
        if s.reversal.is_some_and(|(_, r)| full(r)) {
            assert_eq!(
                sub_licenses[0]["blocked"], true,
                "seed {seed}: {:?} {s:#?}",
                ordered.provider
            );
        }
        if let Some((_, reversal)) = s.one_time {
            let blocked = reversal.is_some_and(full);
            assert!(
                one_time.iter().all(|l| l["blocked"] == blocked),
                "seed {seed}: {:?} {s:#?} {expected:#}",
                ordered.provider
            );
        }
    }
    eprintln!(
        "convergence on {backend:?}: {} histories, {deliveries} shuffled deliveries from {SENDERS} senders",
        pairs.len()
    );
    app.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_histories_converge_in_any_delivery_order() {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let per_provider = std::env::var(HISTORIES_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_HISTORIES);
    eprintln!("convergence seed {seed} ({SEED_ENV}={seed} repeats this run)");
    for backend in backends() {
        run(&backend, seed, per_provider).await;
    }
}
