-- One index serves the claim: pending rows by priority, then by when they fell due. Read in
-- that order, a claim stops after the rows it wants, and rows not yet due (a dead host's
-- backlog) sort after every due row of their priority instead of being stepped over on each
-- claim. It replaces the two indexes the claim chose between (one of them always needed a
-- sort of every due row), which also takes one index write off every row version.
DROP INDEX deliveries_claim;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_queue ON deliveries (state, priority DESC, next_attempt_at, id);
-- Room on each page for the lease update's new row version: it changes no indexed column,
-- so with room it is a HOT update (no new entries in the indexes, and no dead `pending`
-- entries left in them for every claim to step over). Applies to pages written from now on.
ALTER TABLE deliveries SET (fillfactor = 70);
-- Only a pending row can be leased: every transition out of `pending` clears the lease.
-- The outcome writer relies on it (it finds a row by id and lease alone, so that the
-- primary key is the only index its statements can use).
UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
    WHERE state <> 'pending' AND (lease_owner IS NOT NULL OR lease_until IS NOT NULL);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_lease_only_pending
    CHECK (state = 'pending' OR (lease_owner IS NULL AND lease_until IS NULL));
