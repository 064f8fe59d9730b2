-- Drift-triggered retraining (aggregator/campaign.go): the schedule of
-- federated evaluations and the state of the current retraining campaign.
-- One row, created here; the aggregator updates it under its row lock.
CREATE TABLE fed_campaign (
    singleton        INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
    campaign         INTEGER NOT NULL DEFAULT 0,   -- number of the current or last campaign (0: none yet)
    phase            TEXT    NOT NULL DEFAULT '',  -- '' (none), training, evaluating, idle
    reason           TEXT    NOT NULL DEFAULT '',  -- why the current campaign opened
    opened_at_ms     INTEGER NOT NULL DEFAULT 0,
    trained_at_start INTEGER NOT NULL DEFAULT 0,   -- published training versions when it opened
    shift_ms         INTEGER NOT NULL DEFAULT 0,   -- its cutoffs: the configured ones moved by this
    baseline_version INTEGER NOT NULL DEFAULT 0,   -- the version evaluated at publication
    baseline_auc     REAL NOT NULL DEFAULT 0,
    baseline_at_ms   INTEGER NOT NULL DEFAULT 0,
    last_eval_at_ms  INTEGER NOT NULL DEFAULT 0,   -- when the last scheduled evaluation was due
    eval_seq         INTEGER NOT NULL DEFAULT 0,   -- the scheduled evaluation round in flight (0: none)
    updated_at_ms    INTEGER NOT NULL DEFAULT 0
) STRICT;
INSERT INTO fed_campaign (singleton) VALUES (1);
