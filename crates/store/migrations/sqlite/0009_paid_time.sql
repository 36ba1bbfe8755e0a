-- Only paid time is licensed, whatever order a provider delivers in.

-- A subscription's paid time apart from the periods it reports; each part of its record ordered
-- by its own reports (status by the subscription's, plan and quantity by any that name them,
-- ties broken by event id); the store order whose license it adopts.
ALTER TABLE subscriptions ADD COLUMN paid_through INTEGER;
ALTER TABLE subscriptions ADD COLUMN paid_at INTEGER;
ALTER TABLE subscriptions ADD COLUMN order_id TEXT;
ALTER TABLE subscriptions ADD COLUMN state_event TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN shape_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN shape_event TEXT NOT NULL DEFAULT '';
-- Licenses issued so far ran to the reported period: keep them there.
UPDATE subscriptions SET shape_at = state_at,
    paid_through = CASE WHEN license_id IS NULL THEN NULL ELSE period_end END;
CREATE INDEX subscriptions_order ON subscriptions (provider, order_id);

-- What a checkout must capture where Keyturn checks it (PayPal), in hundredths of currency.
ALTER TABLE checkouts ADD COLUMN amount INTEGER;
ALTER TABLE checkouts ADD COLUMN currency TEXT;

-- Which payment settled an invoice, when the provider reports it apart from the invoice (Stripe
-- invoice_payment.paid); kept even when it arrives before the invoice.
CREATE TABLE payment_links (
    provider       TEXT   NOT NULL,
    object_kind    TEXT   NOT NULL,
    object_id      TEXT   NOT NULL,
    payment_intent TEXT,
    charge         TEXT,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (provider, object_kind, object_id)
);
