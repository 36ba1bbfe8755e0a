-- Cryptolens Web API compatibility. Times are Unix milliseconds, flags 0/1 integers.

-- Cryptolens "trial activation": a new machine's activation restarts the license's period.
ALTER TABLE licenses ADD COLUMN trial_activation INTEGER NOT NULL DEFAULT 0;
-- Machines that may always activate, beyond the machine limit (JSON array of machine codes).
ALTER TABLE licenses ADD COLUMN allowed_machines TEXT NOT NULL DEFAULT '[]';

-- A floating seat taken beyond the machine limit (Cryptolens MaxOverdraft).
ALTER TABLE activations ADD COLUMN overdraft INTEGER NOT NULL DEFAULT 0;

-- Cryptolens key lock: the one license a token may touch; -1 = the caller names the key.
ALTER TABLE access_tokens ADD COLUMN key_lock INTEGER;
