-- Data objects (Cryptolens "custom variables") and messages to programs. Times are Unix
-- milliseconds.

-- A data object belongs to a product, to a license of it, or to one activated machine of a
-- license: the most specific reference set says which. Machine data objects go with their
-- activation; license data objects with their license.
CREATE TABLE data_objects (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id    INTEGER NOT NULL REFERENCES products (id),
    license_id    INTEGER REFERENCES licenses (id) ON DELETE CASCADE,
    activation_id INTEGER REFERENCES activations (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    string_value  TEXT    NOT NULL,
    int_value     INTEGER NOT NULL,    -- within the 32-bit range
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX data_objects_product ON data_objects (product_id, id);
CREATE INDEX data_objects_license ON data_objects (license_id, id);
CREATE INDEX data_objects_activation ON data_objects (activation_id, id);

-- Messages a vendor broadcasts to its programs; no product means every product.
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id  INTEGER REFERENCES products (id) ON DELETE CASCADE,
    channel     TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX messages_created ON messages (created_at, id);
