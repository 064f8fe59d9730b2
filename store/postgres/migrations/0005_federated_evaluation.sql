-- Federated evaluation: the DP evaluation histogram an update carries (JSON,
-- empty when the round asked for none). A model version's metrics are set
-- when an evaluation of it is published.
ALTER TABLE fed_updates ADD COLUMN evaluation text NOT NULL DEFAULT '';
