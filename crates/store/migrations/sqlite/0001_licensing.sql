-- Times are Unix milliseconds (INTEGER) and flags are 0/1 INTEGERs, so the SQLite and PostgreSQL
-- schemas hold the same values and one set of queries serves both.

CREATE TABLE products (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT   NOT NULL,
    features    TEXT   NOT NULL,            -- JSON array, ordered
    created_at  INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    product_id  INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    algorithm   TEXT   NOT NULL,
    private_key TEXT   NOT NULL,
    public_key  TEXT   NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (product_id, algorithm)
);

CREATE TABLE plans (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id             INTEGER NOT NULL REFERENCES products (id),
    name                   TEXT   NOT NULL,
    period_days            INTEGER,
    features               TEXT   NOT NULL,
    max_machines           INTEGER NOT NULL,
    floating_lease_seconds INTEGER,
    trial                  INTEGER NOT NULL,
    grace_days             INTEGER NOT NULL,
    created_at             INTEGER NOT NULL
);
CREATE INDEX plans_product ON plans (product_id);

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT   NOT NULL,
    email       TEXT,
    company     TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX customers_email ON customers (email);

CREATE TABLE licenses (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    key                    TEXT   NOT NULL UNIQUE,
    product_id             INTEGER NOT NULL REFERENCES products (id),
    plan_id                INTEGER REFERENCES plans (id),
    customer_id            INTEGER REFERENCES customers (id),
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    expires_at             INTEGER,
    period_days            INTEGER,
    features               TEXT   NOT NULL,
    max_machines           INTEGER NOT NULL,
    floating_lease_seconds INTEGER,
    trial                  INTEGER NOT NULL,
    notes                  TEXT   NOT NULL,
    blocked                INTEGER NOT NULL,
    metadata               TEXT   NOT NULL
);
CREATE INDEX licenses_product ON licenses (product_id, id);
CREATE INDEX licenses_customer ON licenses (customer_id, id);
CREATE INDEX licenses_expires ON licenses (expires_at);

CREATE TABLE activations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    license_id       INTEGER NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
    fingerprint      TEXT   NOT NULL,
    name             TEXT,
    ip               TEXT,
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    lease_expires_at INTEGER,
    UNIQUE (license_id, fingerprint)
);

-- One trial per machine per product, whatever the concurrency.
CREATE TABLE trials (
    product_id  INTEGER NOT NULL REFERENCES products (id),
    fingerprint TEXT   NOT NULL,
    license_id  INTEGER NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (product_id, fingerprint)
);

CREATE TABLE access_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT   NOT NULL,
    token_hash  TEXT   NOT NULL UNIQUE,
    permissions TEXT   NOT NULL,            -- JSON array of permission names
    product_id  INTEGER REFERENCES products (id),
    expires_at  INTEGER,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- The audit log outlives the license it describes: no foreign key.
CREATE TABLE license_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    license_id  INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    details     TEXT   NOT NULL
);
CREATE INDEX license_events_license ON license_events (license_id, id);
