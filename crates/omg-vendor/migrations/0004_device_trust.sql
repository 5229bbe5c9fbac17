-- omg-vendor schema, version 4: the trust chain for device keys.
--
-- A device gets keys only if the vendor enrolled it (`omg vendor enroll`,
-- `POST /v1/devices/enroll`; `enrolled_at` is the time, NULL for a device never enrolled) or
-- a device maker the vendor trusts endorsed its key (the endorsement is checked at each
-- activation; `endorsed_by` is the key id of the maker whose endorsement first let it in).
-- Devices recorded on first use by earlier versions are neither: they were never vetted, so
-- the operator enrols the ones it knows. `makers` holds the device makers' public keys the
-- operator trusts (`omg vendor trust-maker`, `POST /v1/makers/trust`). Portable SQL.

ALTER TABLE devices ADD COLUMN enrolled_at BIGINT;
ALTER TABLE devices ADD COLUMN endorsed_by TEXT;

CREATE TABLE makers (
    key_id     TEXT   NOT NULL PRIMARY KEY,     -- hex, 16 bytes (key id of the public key)
    public_key TEXT   NOT NULL,                 -- hex SEC1
    trusted_at BIGINT NOT NULL
);
