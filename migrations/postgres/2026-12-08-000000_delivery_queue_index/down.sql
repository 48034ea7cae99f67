ALTER TABLE deliveries DROP CONSTRAINT deliveries_lease_only_pending;
ALTER TABLE deliveries RESET (fillfactor);
DROP INDEX deliveries_queue;
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_claim ON deliveries (state, priority DESC, id);
