-- A version a rollback withdrew (the active version it rolled back from,
-- the versions between it and the target on the active lineage, and their
-- descendants): predict pinned to it, GET /v1/models/{v} and a merchant's
-- fetch of it are refused (410), and no round trains from it.
-- withdrawn_at_ms 0: not withdrawn. withdrawn_by is the rollback's audit
-- outbox id, withdrawn_seq its audit entry's seq once appended (0 before).
-- aggregator/withdraw.go.
ALTER TABLE fed_models ADD COLUMN withdrawn_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fed_models ADD COLUMN withdrawn_by TEXT NOT NULL DEFAULT '';
ALTER TABLE fed_models ADD COLUMN withdrawn_seq INTEGER NOT NULL DEFAULT 0;
