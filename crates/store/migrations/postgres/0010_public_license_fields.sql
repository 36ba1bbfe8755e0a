-- What replies to unauthenticated programs (validation, activation, trials) show of a product's
-- licenses beyond their terms: the notes when public_notes is 1, and the metadata keys listed
-- in public_metadata (a JSON array). Nothing by default.
ALTER TABLE products ADD COLUMN public_notes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN public_metadata TEXT NOT NULL DEFAULT '[]';
