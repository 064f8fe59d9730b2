-- Append-only, continued. INSERT OR REPLACE (and REPLACE INTO, and an upsert)
-- deletes the conflicting row without firing the DELETE trigger of 0001
-- (recursive_triggers is off), so a stored entry or checkpoint could be
-- rewritten in place. A BEFORE INSERT trigger runs before the conflict is
-- resolved: refuse any insert whose seq is already stored.
-- An operator with the file can still drop these triggers; the signed
-- checkpoints and the witness outside the database are the real defence.
CREATE TRIGGER audit_entries_no_replace BEFORE INSERT ON audit_entries
WHEN EXISTS (SELECT 1 FROM audit_entries WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: replacing an entry refused'); END;
CREATE TRIGGER audit_checkpoints_no_replace BEFORE INSERT ON audit_checkpoints
WHEN EXISTS (SELECT 1 FROM audit_checkpoints WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: replacing a checkpoint refused'); END;
