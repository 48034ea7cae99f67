DROP INDEX remote_interactions_object;
DROP INDEX deliveries_claim;
