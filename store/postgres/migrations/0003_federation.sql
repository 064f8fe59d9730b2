-- Federation tables (package aggregator): merchants, rounds, accepted updates,
-- envelope nonces, per-merchant privacy ledger and its head row, model registry.
CREATE TABLE fed_merchants (
    id             text    PRIMARY KEY,
    region         text    NOT NULL,
    time_zone      text    NOT NULL,
    public_key     bytea    NOT NULL,
    revoked        bigint  NOT NULL DEFAULT 0,
    enrolled_at_ms bigint  NOT NULL
);

CREATE TABLE fed_rounds (
    seq          bigint PRIMARY KEY,
    id           text    NOT NULL UNIQUE,
    state        text    NOT NULL,
    opened_at_ms bigint  NOT NULL,
    deadline_ms  bigint  NOT NULL,
    quorum       bigint  NOT NULL,
    selected     text    NOT NULL,
    base_version bigint  NOT NULL,
    plan         text    NOT NULL,
    reason       text    NOT NULL DEFAULT '',
    closed_at_ms bigint  NOT NULL DEFAULT 0
);
CREATE INDEX fed_rounds_state ON fed_rounds (state);

CREATE TABLE fed_updates (
    id              text    PRIMARY KEY,
    round_id        text    NOT NULL REFERENCES fed_rounds (id),
    merchant        text    NOT NULL REFERENCES fed_merchants (id),
    envelope_sha256 bytea    NOT NULL UNIQUE,
    nonce           bytea    NOT NULL,
    delta           text    NOT NULL,
    release         text    NOT NULL,
    customers       text    NOT NULL,
    epsilon         double precision    NOT NULL,
    accepted_at_ms  bigint  NOT NULL,
    audited         bigint  NOT NULL DEFAULT 0,
    UNIQUE (round_id, merchant)
);
CREATE INDEX fed_updates_unaudited ON fed_updates (audited) WHERE audited = 0;

CREATE TABLE fed_nonces (
    merchant   text    NOT NULL,
    nonce      bytea    NOT NULL,
    seen_at_ms bigint  NOT NULL,
    PRIMARY KEY (merchant, nonce)
);

CREATE TABLE fed_budgets (
    merchant        text    PRIMARY KEY REFERENCES fed_merchants (id),
    version         bigint  NOT NULL,
    epsilon         double precision    NOT NULL,
    releases        bigint  NOT NULL,
    last_release_ms bigint  NOT NULL
);

CREATE TABLE fed_ledger (
    merchant   text    NOT NULL REFERENCES fed_merchants (id),
    seq        bigint  NOT NULL,
    release    text    NOT NULL,
    round_id   text    NOT NULL,
    update_id  text    NOT NULL,
    epsilon    double precision    NOT NULL,
    at_ms      bigint  NOT NULL,
    PRIMARY KEY (merchant, seq)
);

CREATE TABLE fed_models (
    version         bigint PRIMARY KEY,
    round_id        text    NOT NULL,
    parent          bigint  NOT NULL,
    published_at_ms bigint  NOT NULL,
    contributions   text    NOT NULL,
    policy_hash     text    NOT NULL,
    schema_hash     text    NOT NULL,
    merge           text    NOT NULL,
    metrics         text    NOT NULL,
    model           text    NOT NULL,
    optimizer       text    NOT NULL
);

CREATE TABLE fed_active (
    singleton bigint  PRIMARY KEY CHECK (singleton = 1),
    version   bigint  NOT NULL REFERENCES fed_models (version)
);
