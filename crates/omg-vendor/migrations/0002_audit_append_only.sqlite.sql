-- omg-vendor schema, version 2 (SQLite dialect): the audit table is append-only.
-- The PostgreSQL dialect (0002_audit_append_only.postgres.sql) does the same with a trigger
-- function raising an exception. (A deployment can go further by granting the service's role
-- only INSERT and SELECT on audit.)

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;
