-- The expiry the payment pipeline last gave a subscription's license. An expiry found different
-- was set by someone else (a vendor's extension by hand), which paid time never shortens.
ALTER TABLE subscriptions ADD COLUMN license_expires BIGINT;
