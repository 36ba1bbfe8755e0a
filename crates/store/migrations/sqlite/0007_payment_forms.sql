-- Hosted payment forms, and the checkouts buyers start on them.
CREATE TABLE payment_forms (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id    TEXT   NOT NULL UNIQUE,   -- unguessable, in the form's URL
    name         TEXT   NOT NULL,
    product_id   INTEGER NOT NULL REFERENCES products (id),
    offers       TEXT   NOT NULL,          -- JSON: the plans offered, with prices
    success_text TEXT   NOT NULL,
    email_subject TEXT  NOT NULL,          -- {name}, {product} and {keys} are filled in
    email_body   TEXT   NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE checkouts (
    session_id  TEXT   PRIMARY KEY,         -- the provider's checkout session id
    form_id     INTEGER NOT NULL REFERENCES payment_forms (id) ON DELETE CASCADE,
    provider    TEXT   NOT NULL,
    plan_id     INTEGER NOT NULL REFERENCES plans (id),
    quantity    INTEGER NOT NULL,
    buyer_name  TEXT   NOT NULL,
    buyer_email TEXT   NOT NULL,
    created_at  INTEGER NOT NULL
);
