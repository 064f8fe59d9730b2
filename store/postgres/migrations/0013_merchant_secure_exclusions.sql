-- How many times a merchant has been left out of secure cohorts after
-- repeated dropouts before masking. A readmission keeps it, so that each
-- later exclusion lasts twice the one before (up to
-- rounds.secure_exclusion_max_rounds). aggregator/securedropout.go.
ALTER TABLE fed_merchants ADD COLUMN secure_exclusions integer NOT NULL DEFAULT 0;
