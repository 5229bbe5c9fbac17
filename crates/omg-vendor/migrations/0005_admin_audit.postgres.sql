-- omg-vendor schema, version 5 (PostgreSQL dialect): the operator's actions, as in the SQLite
-- dialect (0005_admin_audit.sqlite.sql), append-only through version 2's trigger function.

CREATE TABLE admin_audit (
    seq      BIGINT NOT NULL PRIMARY KEY,
    at       BIGINT NOT NULL,
    action   TEXT   NOT NULL CHECK (action IN ('revoke_device', 'revoke_model_version')),
    ueid     TEXT,
    model_id TEXT,
    version  BIGINT
);
CREATE INDEX admin_audit_by_time ON admin_audit (at);

CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER admin_audit_no_truncate BEFORE TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
