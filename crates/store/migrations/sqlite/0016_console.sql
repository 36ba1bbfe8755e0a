-- The admin console: its users, their server-side sessions, failed sign-ins (for throttling,
-- shared by every node) and its own audit log; and the indexes its one search box needs.

CREATE TABLE console_users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,        -- argon2id, PHC string
    role          TEXT   NOT NULL,        -- owner | admin | support | sales | read_only
    product_id    INTEGER REFERENCES products (id),
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);

-- A session is known by the SHA-256 of its cookie value only.
CREATE TABLE console_sessions (
    id_hash      TEXT    NOT NULL PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    ended_at     INTEGER,
    ip           TEXT
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);

-- One row per sign-in attempt that is not known to have succeeded, by account (`email:…`)
-- and by address (`ip:…`): written before the password is checked, removed if it was right.
CREATE TABLE console_login_failures (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT    NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX console_login_failures_subject ON console_login_failures (subject, at);

-- What console users did that is not a change of one license (those are in license_events).
CREATE TABLE console_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    details TEXT    NOT NULL
);

-- Prefix search (range scans): keys use the unique index on licenses (key).
CREATE INDEX customers_email_lower ON customers (lower(email));
CREATE INDEX customers_name_lower ON customers (lower(name));
CREATE INDEX activations_fingerprint ON activations (fingerprint);
CREATE INDEX activations_name_lower ON activations (lower(name));
CREATE INDEX payments_object_id ON payments (object_id);
CREATE INDEX payments_subscription_id ON payments (subscription_id);
CREATE INDEX payment_licenses_license ON payment_licenses (license_id);
CREATE INDEX subscriptions_subscription_id ON subscriptions (subscription_id);
CREATE INDEX subscriptions_order_id ON subscriptions (order_id);
CREATE INDEX subscriptions_license ON subscriptions (license_id);
