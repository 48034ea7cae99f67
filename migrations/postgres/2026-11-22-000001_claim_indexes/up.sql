-- The delivery claim reads pending rows in (priority DESC, id) order; without a matching
-- index a large queue is sorted on every claim.
CREATE INDEX deliveries_claim ON deliveries (state, priority DESC, id);
-- Update/Delete of a received reply looks the interaction up by its object.
CREATE INDEX remote_interactions_object ON remote_interactions (object_ap_id);
