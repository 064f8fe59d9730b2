-- Reserved for the secure-aggregation rounds (branch secure), which number
-- their migration 0008; this placeholder keeps the versions contiguous until
-- that one lands and replaces it.
SELECT 1;
