-- Secret URLs that stores (SendOwl, DPD, any store that calls a URL) call to get keys for a sale.
CREATE TABLE license_urls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id     INTEGER NOT NULL REFERENCES plans (id),
    name        TEXT   NOT NULL,
    store       TEXT   NOT NULL,   -- sendowl | dpd | generic: which parameter names it sends
    params      TEXT   NOT NULL,   -- JSON: parameter names for order id, buyer name, email, quantity, item
    secret_hash TEXT   NOT NULL,
    email_buyer INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    rotated_at  INTEGER NOT NULL
);

-- Plans name the product ids of other stores too (Paddle prices, Lemon Squeezy variants, …).
ALTER TABLE plans ADD COLUMN store_product_ids TEXT NOT NULL DEFAULT '[]';
