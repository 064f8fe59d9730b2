-- Secure aggregation (aggregator/secure.go): the SecAgg+ stage of each secure
-- round and the snapshot of the aggregator's protocol state (public keys,
-- share boxes it cannot open, the running sum of the masked inputs, unmask
-- shares), and which merchant sent which stage's message. No individual
-- masked input is stored; result is the unmasked sum once the round is done.
CREATE TABLE fed_secure_rounds (
    round_id          text    PRIMARY KEY REFERENCES fed_rounds (id),
    stage             text    NOT NULL,
    stage_deadline_ms bigint  NOT NULL,
    server            bytea   NOT NULL,
    result            bytea   NOT NULL DEFAULT '\x',
    reason            text    NOT NULL DEFAULT '',
    updated_at_ms     bigint  NOT NULL
);

CREATE TABLE fed_secure_messages (
    round_id        text    NOT NULL REFERENCES fed_rounds (id),
    merchant        text    NOT NULL REFERENCES fed_merchants (id),
    stage           text    NOT NULL,
    envelope_sha256 bytea   NOT NULL,
    accepted_at_ms  bigint  NOT NULL,
    PRIMARY KEY (round_id, merchant, stage)
);
