-- The console's sales and money lists: each filter a list offers is a range over an index, in
-- the list's keyset order.
CREATE INDEX payments_provider ON payments (provider, id);
CREATE INDEX payments_status ON payments (status, id);
CREATE INDEX payments_customer ON payments (customer_id, id);
CREATE INDEX provider_events_time ON provider_events (created_at, provider, event_id);
CREATE INDEX provider_events_status ON provider_events (status, created_at, provider, event_id);
CREATE INDEX provider_events_type ON provider_events (type, created_at, provider, event_id);
CREATE INDEX subscriptions_status ON subscriptions (status, provider, subscription_id);
CREATE INDEX mail_outbox_state ON mail_outbox (sent_at, id);
CREATE INDEX licenses_trial ON licenses (trial, id);
