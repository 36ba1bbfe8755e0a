-- The console's set-up pages: a product's description, what providers' refused webhook
-- deliveries came to, and the indexes the provider status page reads through.

ALTER TABLE products ADD COLUMN description TEXT NOT NULL DEFAULT '';

-- Webhook deliveries refused before anything was recorded (a wrong or stale signature, a
-- wrong secret, a provider this server is not set up for): one row per provider and reason,
-- counted, so an operator sees a misconfigured secret without the table growing with every
-- refused request.
CREATE TABLE webhook_refusals (
    provider    TEXT   NOT NULL,
    reason      TEXT   NOT NULL,   -- bad_signature | not_configured
    count       BIGINT NOT NULL,
    first_at    BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    last_detail TEXT   NOT NULL,   -- the refusal's message (never a secret)
    PRIMARY KEY (provider, reason)
);

-- The newest event a provider sent, and its failed events, each an index range.
CREATE INDEX provider_events_setup_received ON provider_events (provider, received_at);
CREATE INDEX provider_events_setup_status ON provider_events (provider, status, received_at);
