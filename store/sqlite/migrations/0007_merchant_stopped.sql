-- A merchant that sends no more updates (its own privacy cap is reached)
-- says so; rounds stop waiting for it. Empty while it takes part.
ALTER TABLE fed_merchants ADD COLUMN stopped TEXT NOT NULL DEFAULT '';
