-- Append-only, continued. ON CONFLICT DO UPDATE and MERGE fire the row
-- triggers of 0001, TRUNCATE the statement ones. But an ordinary trigger does
-- not fire when session_replication_role is replica (settable by a superuser
-- or, since PostgreSQL 15, by a role granted it), which would let a session
-- rewrite the log. ENABLE ALWAYS makes the triggers fire in every mode.
-- The table owner can still disable or drop them; the signed checkpoints and
-- the witness outside the database are the real defence.
ALTER TABLE audit_entries ENABLE ALWAYS TRIGGER audit_entries_append_only;
ALTER TABLE audit_entries ENABLE ALWAYS TRIGGER audit_entries_no_truncate;
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_append_only;
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_truncate;
