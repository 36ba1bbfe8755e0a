-- The seller's branding, shown on the buy pages, the portal and in mails: one row (id 1),
-- absent until first saved (the pages then show the product and form names alone).
CREATE TABLE branding (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    display_name  TEXT   NOT NULL,
    logo_url      TEXT,
    accent        TEXT,
    support_email TEXT,
    terms_url     TEXT,
    privacy_url   TEXT,
    refund_url    TEXT,
    updated_at    INTEGER NOT NULL
);

-- A mail may carry an HTML part beside its text; older rows and plain mails have none.
ALTER TABLE mail_outbox ADD COLUMN html_body TEXT;

-- What a form says about what is sold and about taxes, shown on its buy page.
ALTER TABLE payment_forms ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE payment_forms ADD COLUMN tax_note TEXT NOT NULL DEFAULT '';

-- Days before a license (of this plan, without an auto-renewing subscription) expires when its
-- buyer is reminded by mail; none: no reminder.
ALTER TABLE plans ADD COLUMN expiry_reminder_days INTEGER;

-- A product's own words for one kind of mail, replacing the default template.
CREATE TABLE mail_templates (
    product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    kind       TEXT   NOT NULL,   -- key_delivered | sign_in_link | renewal_failed | expiring | cancelled
    subject    TEXT   NOT NULL,
    text_body  TEXT   NOT NULL,
    html_body  TEXT   NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (product_id, kind)
);

-- Reminder mails already queued, so each goes once: (expiring, license id, its expiry) and
-- (renewal_failed, payment id, 0). Written in the transaction that queues the mail.
CREATE TABLE mail_notices (
    kind      TEXT   NOT NULL,
    object_id INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (kind, object_id, at)
);
