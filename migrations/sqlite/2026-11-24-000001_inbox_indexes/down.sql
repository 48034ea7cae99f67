DROP INDEX remote_interactions_one_reaction;
DROP INDEX follows_host_user;
ALTER TABLE follows DROP COLUMN host;
