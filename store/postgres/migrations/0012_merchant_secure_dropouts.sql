-- A merchant's recent secure rounds it dropped out of before masking (round
-- seqs, comma-separated, at most rounds.secure_dropout_limit within the last
-- rounds.secure_dropout_window), and the last round seq it is left out of
-- secure cohorts for (0: not excluded). aggregator/securedropout.go.
ALTER TABLE fed_merchants ADD COLUMN secure_dropouts text NOT NULL DEFAULT '';
ALTER TABLE fed_merchants ADD COLUMN secure_excluded_until bigint NOT NULL DEFAULT 0;
