-- Federation tables (package aggregator): merchants, rounds, accepted updates,
-- envelope nonces, per-merchant privacy ledger and its head row, model registry.
CREATE TABLE fed_merchants (
    id             TEXT    PRIMARY KEY,
    region         TEXT    NOT NULL,
    time_zone      TEXT    NOT NULL,
    public_key     BLOB    NOT NULL,
    revoked        INTEGER NOT NULL DEFAULT 0,
    enrolled_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE fed_rounds (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    state        TEXT    NOT NULL,
    opened_at_ms INTEGER NOT NULL,
    deadline_ms  INTEGER NOT NULL,
    quorum       INTEGER NOT NULL,
    selected     TEXT    NOT NULL,
    base_version INTEGER NOT NULL,
    plan         TEXT    NOT NULL,
    reason       TEXT    NOT NULL DEFAULT '',
    closed_at_ms INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX fed_rounds_state ON fed_rounds (state);

CREATE TABLE fed_updates (
    id              TEXT    PRIMARY KEY,
    round_id        TEXT    NOT NULL REFERENCES fed_rounds (id),
    merchant        TEXT    NOT NULL REFERENCES fed_merchants (id),
    envelope_sha256 BLOB    NOT NULL UNIQUE,
    nonce           BLOB    NOT NULL,
    delta           TEXT    NOT NULL,
    release         TEXT    NOT NULL,
    customers       TEXT    NOT NULL,
    epsilon         REAL    NOT NULL,
    accepted_at_ms  INTEGER NOT NULL,
    audited         INTEGER NOT NULL DEFAULT 0,
    UNIQUE (round_id, merchant)
) STRICT;
CREATE INDEX fed_updates_unaudited ON fed_updates (audited) WHERE audited = 0;

CREATE TABLE fed_nonces (
    merchant   TEXT    NOT NULL,
    nonce      BLOB    NOT NULL,
    seen_at_ms INTEGER NOT NULL,
    PRIMARY KEY (merchant, nonce)
) STRICT;

CREATE TABLE fed_budgets (
    merchant        TEXT    PRIMARY KEY REFERENCES fed_merchants (id),
    version         INTEGER NOT NULL,
    epsilon         REAL    NOT NULL,
    releases        INTEGER NOT NULL,
    last_release_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE fed_ledger (
    merchant   TEXT    NOT NULL REFERENCES fed_merchants (id),
    seq        INTEGER NOT NULL,
    release    TEXT    NOT NULL,
    round_id   TEXT    NOT NULL,
    update_id  TEXT    NOT NULL,
    epsilon    REAL    NOT NULL,
    at_ms      INTEGER NOT NULL,
    PRIMARY KEY (merchant, seq)
) STRICT;

CREATE TABLE fed_models (
    version         INTEGER PRIMARY KEY,
    round_id        TEXT    NOT NULL,
    parent          INTEGER NOT NULL,
    published_at_ms INTEGER NOT NULL,
    contributions   TEXT    NOT NULL,
    policy_hash     TEXT    NOT NULL,
    schema_hash     TEXT    NOT NULL,
    merge           TEXT    NOT NULL,
    metrics         TEXT    NOT NULL,
    model           TEXT    NOT NULL,
    optimizer       TEXT    NOT NULL
) STRICT;

CREATE TABLE fed_active (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    version   INTEGER NOT NULL REFERENCES fed_models (version)
) STRICT;
