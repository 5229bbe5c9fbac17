-- omg-vendor schema, version 2 (SQLite dialect): the audit table is append-only.
-- A PostgreSQL store does the same with a trigger function raising an exception (or by
-- granting the service role only INSERT and SELECT on audit).

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;
