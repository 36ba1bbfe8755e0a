-- The customer portal (/portal): one-time sign-in links and buyers' sessions. A buyer is known
-- by the email address they proved they read; both tables hold SHA-256 hashes of the secrets
-- only. Requests for links are throttled through console_login_failures with `portal-…`
-- subjects (one shared counter table, every node sees the same counts).

CREATE TABLE portal_links (
    id_hash    TEXT   NOT NULL PRIMARY KEY,
    email      TEXT   NOT NULL,            -- lower-cased
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX portal_links_expires ON portal_links (expires_at);

CREATE TABLE portal_sessions (
    id_hash      TEXT   NOT NULL PRIMARY KEY,
    email        TEXT   NOT NULL,          -- lower-cased
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    ended_at     BIGINT,
    ip           TEXT
);

-- A buyer's licenses are found by equality on the lower-cased email; the console's index on
-- it is in the "C" collation for prefix ranges, which an equality in the default one cannot use.
CREATE INDEX customers_email_lower_eq ON customers (lower(email));
