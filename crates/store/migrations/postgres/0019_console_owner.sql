-- The console's dashboard, second factor, session list and user management.

-- Validations and activations per day, product and result code. Programs validate far more
-- often than anything else happens, so a validation never writes: each server counts in memory
-- and adds its counts here every few seconds, with the machines' check-ins, in one transaction
-- (`App::flush_check_ins`). The sum over every node's additions is the count.
CREATE TABLE usage_daily (
    day        BIGINT  NOT NULL,   -- days since 1970-01-01, UTC
    kind       TEXT    NOT NULL,   -- validation | activation
    product_id BIGINT  NOT NULL,   -- 0: the key matched no license
    code       TEXT    NOT NULL,   -- the result code (valid, expired, not_found, …)
    count      BIGINT  NOT NULL,
    PRIMARY KEY (day, kind, product_id, code)
);

-- TOTP: the secret (sealed with the master key when one is configured), one being enrolled
-- until a code confirms it, and the step of the last code accepted (never accepted again).
ALTER TABLE console_users ADD COLUMN totp_secret TEXT;
ALTER TABLE console_users ADD COLUMN totp_pending TEXT;
ALTER TABLE console_users ADD COLUMN totp_last_step BIGINT;

ALTER TABLE console_sessions ADD COLUMN user_agent TEXT;

-- A sign-in whose password was right and whose code is still to come: known by the SHA-256 of
-- a cookie of its own, never a session.
CREATE TABLE console_challenges (
    id_hash    TEXT    NOT NULL PRIMARY KEY,
    user_id    BIGINT  NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    ip         TEXT,
    user_agent TEXT
);
CREATE INDEX console_challenges_created ON console_challenges (created_at);

-- The dashboard's aggregations: each a range over one of these.
CREATE INDEX licenses_created ON licenses (created_at);
CREATE INDEX licenses_product_created ON licenses (product_id, created_at);
-- Expiries with the blocked flag, so counting the coming ones reads no license row.
CREATE INDEX licenses_expires_blocked ON licenses (expires_at, blocked);
CREATE INDEX licenses_product_expires ON licenses (product_id, expires_at, blocked);
CREATE INDEX payments_created ON payments (created_at);
CREATE INDEX activations_last_seen ON activations (last_seen_at);
