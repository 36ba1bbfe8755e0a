-- Outgoing webhooks. An event is written in the transaction of the change it reports, with one
-- delivery per endpoint that wants it; workers on any node lease due deliveries (claimed_until),
-- and every attempt is logged. Deliveries for one license reach an endpoint in event order: only
-- the oldest pending one of an (endpoint, license) is due, the others wait (next_attempt_at NULL).

CREATE TABLE webhook_endpoints (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    url                   TEXT    NOT NULL,
    description           TEXT    NOT NULL,
    events                TEXT    NOT NULL,        -- JSON array of patterns: *, license.*, license.created
    product_id            INTEGER REFERENCES products (id),
    enabled               INTEGER NOT NULL,
    secret                TEXT    NOT NULL,        -- sealed with the master key when one is set
    previous_secret       TEXT,                    -- still signs until previous_secret_until
    previous_secret_until INTEGER,
    failing_since         INTEGER,                 -- first failed attempt since the last success
    disabled_reason       TEXT,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

CREATE TABLE webhook_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id   TEXT    NOT NULL UNIQUE,           -- evt_…, what receivers deduplicate by
    type        TEXT    NOT NULL,
    license_id  INTEGER,                           -- no foreign key: a deleted license's events stay
    created_at  INTEGER NOT NULL,
    body        TEXT    NOT NULL                   -- the exact JSON every attempt sends
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id      INTEGER NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         INTEGER NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    license_id       INTEGER,                      -- the order key; none: no order to keep
    state            TEXT    NOT NULL,             -- pending | delivered | failed
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER,                      -- NULL: waits for an older delivery of its license
    claimed_until    INTEGER,
    claim            TEXT,                         -- the lease's token; a late result of an expired one is only logged
    first_attempt_at INTEGER,
    finished_at      INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, license_id, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at);

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    status      INTEGER,                           -- the HTTP status, if an answer came
    error       TEXT,                              -- why it failed, if it did
    latency_ms  INTEGER NOT NULL,
    response    TEXT    NOT NULL,                  -- the first bytes of the answer
    node        TEXT    NOT NULL                   -- which server node made the attempt
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- Lifecycle events found by a sweep rather than by a change: each once per value (a license's
-- expiry, a floating lease's end), whichever node sweeps.
CREATE TABLE webhook_notices (
    kind      TEXT    NOT NULL,                    -- expired | expiring_soon | lease_lapsed
    object_id INTEGER NOT NULL,
    at        INTEGER NOT NULL,                    -- the expiry or lease end it is about
    PRIMARY KEY (kind, object_id, at)
);
CREATE TABLE webhook_sweeps (
    name          TEXT    NOT NULL PRIMARY KEY,
    done_until    INTEGER NOT NULL,                -- everything up to here has been swept,
    done_id       INTEGER NOT NULL,                -- … up to this id at done_until
    claimed_until INTEGER
);
CREATE INDEX activations_lease ON activations (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
