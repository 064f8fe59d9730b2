-- The plausible customers (policy max_customers, else ⌊1/δ⌋) of each merchant
-- of a secure round's cohort when the round was planned, as a JSON array in
-- the plan's merchant order: the publish norm check bounds the unmasked sum
-- with them, so that a policy reload during the round cannot move the bound
-- (aggregator/secure.go). '' for rounds planned before this column.
ALTER TABLE fed_secure_rounds ADD COLUMN plausible_customers text NOT NULL DEFAULT '';
