-- omg-vendor schema, version 1.
--
-- Portable SQL: only TEXT, INTEGER and BIGINT columns, no dialect-specific identity columns
-- or booleans, so the same statements run on SQLite and PostgreSQL.
--   * binary values (UEIDs, keys, nonces, licences) are lowercase hex TEXT;
--   * times are BIGINT seconds since the Unix epoch;
--   * flags are INTEGER 0 / 1 with a CHECK;
--   * sequence numbers (activations.id, audit.seq) are assigned by the service inside its
--     write transaction (MAX + 1), so no SERIAL / AUTOINCREMENT is needed.

CREATE TABLE models (
    model_id         TEXT    NOT NULL PRIMARY KEY,
    policy           TEXT    NOT NULL,              -- JSON of omg_vendor::Policy
    revocation_epoch BIGINT  NOT NULL CHECK (revocation_epoch >= 0),
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);

CREATE TABLE model_versions (
    model_id    TEXT    NOT NULL REFERENCES models (model_id),
    version     BIGINT  NOT NULL CHECK (version >= 0),
    content_key TEXT    NOT NULL,                   -- hex, 32 bytes
    revoked     INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    revoked_at  BIGINT,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (model_id, version)
);

CREATE TABLE devices (
    ueid       TEXT    NOT NULL PRIMARY KEY,        -- hex, 33 bytes (0x01 || SHA-256(SEC1 key))
    public_key TEXT,                                -- hex SEC1; NULL if revoked before first seen
    first_seen BIGINT,
    revoked    INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    revoked_at BIGINT
);

CREATE TABLE nonces (
    nonce      TEXT    NOT NULL PRIMARY KEY,        -- hex, 32 bytes
    issued_at  BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),
    used_at    BIGINT
);
CREATE INDEX nonces_by_expiry ON nonces (expires_at);

CREATE TABLE activations (
    id           BIGINT NOT NULL PRIMARY KEY,
    ueid         TEXT   NOT NULL REFERENCES devices (ueid),
    model_id     TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    activated_at BIGINT NOT NULL,
    licence      TEXT   NOT NULL,                   -- hex COSE_Sign1 licence
    FOREIGN KEY (model_id, version) REFERENCES model_versions (model_id, version)
);
CREATE INDEX activations_by_model_device ON activations (model_id, ueid);

-- Append-only: one row per activation attempt, successful or not.
CREATE TABLE audit (
    seq      BIGINT NOT NULL PRIMARY KEY,
    at       BIGINT NOT NULL,
    ueid     TEXT,                                  -- hex, as claimed by the request (may be unverified)
    model_id TEXT,
    version  BIGINT,
    outcome  TEXT   NOT NULL CHECK (outcome IN ('activated', 'refused')),
    reason   TEXT                                   -- refusal code; NULL when activated
);
CREATE INDEX audit_by_time ON audit (at);
