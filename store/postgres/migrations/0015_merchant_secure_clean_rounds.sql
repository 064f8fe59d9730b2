-- How many secure rounds a merchant with earlier exclusions has masked in
-- since its last dropout before masking: at
-- rounds.secure_exclusion_forgive_rounds its count of exclusions
-- (secure_exclusions) halves and this restarts at 0.
-- aggregator/securedropout.go.
ALTER TABLE fed_merchants ADD COLUMN secure_clean_rounds integer NOT NULL DEFAULT 0;
