-- When the merchant's stop took effect (0 while it takes part, and for stops
-- recorded before this column): a request for the current round resumes it
-- only aggregator.MinStoppedFor after, so that alternating stops and
-- requests cannot write an audited change per request.
ALTER TABLE fed_merchants ADD COLUMN stopped_at_ms bigint NOT NULL DEFAULT 0;
