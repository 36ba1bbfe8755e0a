-- Cryptolens's "block expired licenses" product option: on the Cryptolens API an expired
-- license of the product answers as blocked (1) instead of being returned as it is (0).
ALTER TABLE products ADD COLUMN block_expired_licenses BIGINT NOT NULL DEFAULT 0;

-- Cryptolens feature lock of an access token, as the license fields Activate and GetKey hide
-- from its callers (FieldsToReturn bits; 0 hides nothing).
ALTER TABLE access_tokens ADD COLUMN feature_lock BIGINT NOT NULL DEFAULT 0;

-- The hash of a customer's secret (Cryptolens GetCustomerLicensesBySecret): shown once when
-- made, kept only as its SHA-256 like access tokens.
ALTER TABLE customers ADD COLUMN secret_hash TEXT;
CREATE UNIQUE INDEX customers_secret_hash ON customers (secret_hash);

-- What a program said about the machine's operating system when it activated (Cryptolens
-- OSInfo, a JSON text from the .NET SDK); the latest activation's wins.
ALTER TABLE activations ADD COLUMN os_info TEXT;
