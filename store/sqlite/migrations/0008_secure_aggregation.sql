-- Secure aggregation (aggregator/secure.go): the SecAgg+ stage of each secure
-- round and the snapshot of the aggregator's protocol state (public keys,
-- share boxes it cannot open, the running sum of the masked inputs, unmask
-- shares), and which merchant sent which stage's message. No individual
-- masked input is stored; result is the unmasked sum once the round is done.
CREATE TABLE fed_secure_rounds (
    round_id          TEXT    PRIMARY KEY REFERENCES fed_rounds (id),
    stage             TEXT    NOT NULL,
    stage_deadline_ms INTEGER NOT NULL,
    server            BLOB    NOT NULL,
    result            BLOB    NOT NULL DEFAULT x'',
    reason            TEXT    NOT NULL DEFAULT '',
    updated_at_ms     INTEGER NOT NULL
) STRICT;

CREATE TABLE fed_secure_messages (
    round_id        TEXT    NOT NULL REFERENCES fed_rounds (id),
    merchant        TEXT    NOT NULL REFERENCES fed_merchants (id),
    stage           TEXT    NOT NULL,
    envelope_sha256 BLOB    NOT NULL,
    accepted_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (round_id, merchant, stage)
) STRICT;
