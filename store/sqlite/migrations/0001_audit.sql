-- Audit log: hash-chained entries and signed checkpoints (see package audit).
-- Times are Unix milliseconds, hashes 32-byte blobs, identifiers and details
-- JSON objects.
CREATE TABLE audit_entries (
    seq         INTEGER PRIMARY KEY CHECK (seq > 0),
    time_ms     INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    object      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    identifiers TEXT    NOT NULL,
    details     TEXT    NOT NULL,
    prev_hash   BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash        BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY CHECK (seq > 0),
    log_id    TEXT    NOT NULL,
    hash      BLOB    NOT NULL CHECK (length(hash) = 32),
    time_ms   INTEGER NOT NULL,
    signature BLOB    NOT NULL
) STRICT;

-- Append-only. An attacker with the file can drop these; Verify catches what
-- they do next.
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
