-- Payments: what providers reported, what it did, and the subscriptions it drives.

ALTER TABLE plans ADD COLUMN stripe_price_ids TEXT NOT NULL DEFAULT '[]';  -- JSON: price, plan or product ids
ALTER TABLE plans ADD COLUMN quantity_mode TEXT NOT NULL DEFAULT 'keys';   -- keys | seats
ALTER TABLE plans ADD COLUMN dunning TEXT NOT NULL DEFAULT 'keep';         -- keep | block
ALTER TABLE plans ADD COLUMN on_cancel TEXT NOT NULL DEFAULT 'block';      -- block | expire

ALTER TABLE customers ADD COLUMN stripe_customer_id TEXT;
CREATE UNIQUE INDEX customers_stripe_customer ON customers (stripe_customer_id);

-- A subscription's license, once: the unique index is what makes that hold under any concurrency.
ALTER TABLE licenses ADD COLUMN stripe_subscription_id TEXT;
CREATE UNIQUE INDEX licenses_stripe_subscription ON licenses (stripe_subscription_id);

-- Every inbound webhook, once per (provider, event id), with what it did.
CREATE TABLE provider_events (
    provider    TEXT   NOT NULL,
    event_id    TEXT   NOT NULL,
    type        TEXT   NOT NULL,
    created_at  INTEGER NOT NULL,   -- the provider's time for the event
    received_at INTEGER NOT NULL,
    status      TEXT   NOT NULL,   -- applied | ignored | failed
    detail      TEXT   NOT NULL,
    payload     TEXT   NOT NULL,
    attempts    INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
);
CREATE INDEX provider_events_created ON provider_events (provider, created_at);

-- One row per business object that moved money (checkout session, invoice, order).
CREATE TABLE payments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    provider        TEXT   NOT NULL,
    object_kind     TEXT   NOT NULL,
    object_id       TEXT   NOT NULL,
    status          TEXT   NOT NULL,   -- paid | failed | refunded | disputed
    customer_id     INTEGER REFERENCES customers (id),
    plan_id         INTEGER REFERENCES plans (id),
    subscription_id TEXT,
    payment_intent  TEXT,
    charge          TEXT,
    amount          INTEGER,
    currency        TEXT,
    event_id        TEXT   NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (provider, object_kind, object_id)
);
CREATE INDEX payments_payment_intent ON payments (provider, payment_intent);
CREATE INDEX payments_charge ON payments (provider, charge);

CREATE TABLE payment_licenses (
    payment_id INTEGER NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    license_id INTEGER NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
    PRIMARY KEY (payment_id, license_id)
);

-- The provider's subscriptions as last reported; may exist before their license does when
-- events arrive out of order.
CREATE TABLE subscriptions (
    provider             TEXT   NOT NULL,
    subscription_id      TEXT   NOT NULL,
    license_id           INTEGER REFERENCES licenses (id) ON DELETE SET NULL,
    plan_id              INTEGER REFERENCES plans (id),
    customer_id          INTEGER REFERENCES customers (id),
    status               TEXT   NOT NULL,
    quantity             INTEGER NOT NULL,
    cancel_at_period_end INTEGER NOT NULL,
    period_end           INTEGER,
    dunning_blocked      INTEGER NOT NULL,
    state_at             INTEGER NOT NULL,  -- provider time of the state recorded here
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    PRIMARY KEY (provider, subscription_id)
);

-- Refunds and disputes, kept even when they arrive before the payment they reverse.
CREATE TABLE payment_reversals (
    provider   TEXT   NOT NULL,
    reference  TEXT   NOT NULL,   -- payment intent or charge id
    kind       TEXT   NOT NULL,   -- refunded | disputed
    event_id   TEXT   NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (provider, reference)
);
