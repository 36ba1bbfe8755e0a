-- Rows brought in from another licensing server (`keyturn import cryptolens`), by their id
-- there: importing again finds and updates them instead of adding new ones, and a Stripe
-- product that names the source's product (`skm_product_id`) finds the product it became.
CREATE TABLE imported (
    origin    TEXT   NOT NULL,   -- the kind of server, e.g. cryptolens
    server    TEXT   NOT NULL,   -- its address
    kind      TEXT   NOT NULL,   -- product, customer or data_object
    source_id TEXT   NOT NULL,
    local_id  INTEGER NOT NULL,
    PRIMARY KEY (origin, server, kind, source_id)
);
CREATE INDEX imported_by_source_id ON imported (origin, kind, source_id);
