-- One index serves the claim: pending rows by priority, then by when they fell due (see the
-- PostgreSQL migration of the same name). SQLite cannot add a CHECK constraint to an
-- existing table; the invariant that only pending rows are leased is kept by the code alone.
DROP INDEX deliveries_claim;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_queue ON deliveries (state, priority DESC, next_attempt_at, id);
