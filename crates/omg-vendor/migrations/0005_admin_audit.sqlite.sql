-- omg-vendor schema, version 5 (SQLite dialect): the operator's actions.
--
-- `admin_audit` records each revocation an operator makes (through the admin API or the
-- console), in the same transaction as the revocation: `audit` keeps the activation attempts.
-- Append-only as `audit` is; the PostgreSQL dialect (0005_admin_audit.postgres.sql) has the
-- same table with version 2's trigger function.

CREATE TABLE admin_audit (
    seq      BIGINT NOT NULL PRIMARY KEY,
    at       BIGINT NOT NULL,
    action   TEXT   NOT NULL CHECK (action IN ('revoke_device', 'revoke_model_version')),
    ueid     TEXT,                                  -- hex, the revoked device
    model_id TEXT,                                  -- the revoked model version's model
    version  BIGINT                                 -- and version
);
CREATE INDEX admin_audit_by_time ON admin_audit (at);

CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
BEGIN
    SELECT RAISE(ABORT, 'admin_audit is append-only');
END;

CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
BEGIN
    SELECT RAISE(ABORT, 'admin_audit is append-only');
END;
