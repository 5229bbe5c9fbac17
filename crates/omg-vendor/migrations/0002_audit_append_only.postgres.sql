-- omg-vendor schema, version 2 (PostgreSQL dialect): the audit table is append-only.
-- The same rule as the SQLite dialect (0002_audit_append_only.sqlite.sql), with a trigger
-- function raising an exception; TRUNCATE, which PostgreSQL has and SQLite has not, is
-- refused too. (Triggers need PostgreSQL 11 or later for EXECUTE FUNCTION.)

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit is append-only';
END;
$$;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
