-- What the delivery claim and the console's webhook pages read, each a short range scan
-- whatever the backlog:
-- - the leased deliveries, counted per endpoint once per claim;
-- - an endpoint's due deliveries in due order, of which a claim reads only as many as the
--   endpoint has room for in flight;
-- - an endpoint's deliveries in one state, newest first (the console's filtered log, and the
--   count of failed ones on the endpoint list).
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (claimed_until) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_ready ON webhook_deliveries (endpoint_id, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint_state ON webhook_deliveries (endpoint_id, state, id);
