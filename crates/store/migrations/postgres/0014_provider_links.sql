-- A subscription's license is the one its row names (subscriptions.license_id), decided while
-- the row is held; a license no longer names a (Stripe) subscription of its own.
DROP INDEX licenses_stripe_subscription;
ALTER TABLE licenses DROP COLUMN stripe_subscription_id;

-- The ids payment providers know a customer by, one per provider; each id names one customer.
CREATE TABLE customer_provider_ids (
    provider    TEXT   NOT NULL,
    external_id TEXT   NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, external_id),
    UNIQUE (customer_id, provider)
);
INSERT INTO customer_provider_ids (provider, external_id, customer_id)
    SELECT 'stripe', stripe_customer_id, id FROM customers WHERE stripe_customer_id IS NOT NULL;
DROP INDEX customers_stripe_customer;
ALTER TABLE customers DROP COLUMN stripe_customer_id;
