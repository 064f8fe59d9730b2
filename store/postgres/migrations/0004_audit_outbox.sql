-- Audit records of committed aggregator actions (round transitions,
-- enrolments, rollbacks) written in the action's own transaction and deleted
-- once the audit log holds them: a crash between the two leaves the record
-- here for Tick to append.
CREATE TABLE fed_audit_outbox (
    id            text   PRIMARY KEY,
    record        text   NOT NULL,
    created_at_ms bigint NOT NULL
);
