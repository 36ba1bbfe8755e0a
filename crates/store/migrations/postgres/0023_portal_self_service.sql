-- Customer portal self-service: what a plan lets its buyers do themselves (free a machine a
-- limited number of times in a window, download an offline license file), and email changes
-- waiting for the new address to confirm them. A confirmation link's secret is held as its
-- SHA-256 only, works once and expires, like a sign-in link.

ALTER TABLE plans ADD COLUMN buyers_may_free_machines  BIGINT NOT NULL DEFAULT 1;
ALTER TABLE plans ADD COLUMN buyer_frees_max           BIGINT NOT NULL DEFAULT 3;
ALTER TABLE plans ADD COLUMN buyer_frees_days          BIGINT NOT NULL DEFAULT 30;
ALTER TABLE plans ADD COLUMN buyers_may_download_files BIGINT NOT NULL DEFAULT 0;
ALTER TABLE plans ADD COLUMN buyer_file_days           BIGINT NOT NULL DEFAULT 30;

CREATE TABLE portal_email_changes (
    id_hash    TEXT    NOT NULL PRIMARY KEY,
    old_email  TEXT    NOT NULL,           -- lower-cased, the session's
    new_email  TEXT    NOT NULL,           -- lower-cased
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX portal_email_changes_expires ON portal_email_changes (expires_at);
