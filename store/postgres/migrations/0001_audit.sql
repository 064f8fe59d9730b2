-- Audit log: hash-chained entries and signed checkpoints (see package audit).
-- Times are Unix milliseconds, hashes 32-byte values. Identifiers are jsonb
-- so a reviewer can search: WHERE identifiers @> '{"customer":"hmac-sha256:…"}'.
CREATE TABLE audit_entries (
    seq         bigint PRIMARY KEY CHECK (seq > 0),
    time_ms     bigint NOT NULL,
    actor       text   NOT NULL,
    action      text   NOT NULL,
    object      text   NOT NULL,
    outcome     text   NOT NULL,
    reason      text   NOT NULL,
    identifiers jsonb  NOT NULL,
    details     jsonb  NOT NULL,
    prev_hash   bytea  NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash        bytea  NOT NULL CHECK (octet_length(hash) = 32)
);

CREATE TABLE audit_checkpoints (
    seq       bigint PRIMARY KEY CHECK (seq > 0),
    log_id    text   NOT NULL,
    hash      bytea  NOT NULL CHECK (octet_length(hash) = 32),
    time_ms   bigint NOT NULL,
    signature bytea  NOT NULL
);

-- Append-only: refuse UPDATE, DELETE and TRUNCATE. A superuser can still
-- disable the triggers; Verify catches what they do next.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
