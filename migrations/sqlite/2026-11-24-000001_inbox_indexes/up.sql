-- The follower's host on each follow (it never changes: a remote actor's host is part of
-- its id), so that the follow caps count one host's follows in an index instead of joining
-- every follow to its actor.
ALTER TABLE follows ADD COLUMN host TEXT NOT NULL DEFAULT '';
UPDATE follows SET host = (
    SELECT remote_actors.host FROM remote_actors WHERE remote_actors.id = follows.remote_actor_id
);
CREATE INDEX follows_host_user ON follows (host, user_id);

-- One like (and one boost) in effect per actor and post, even when two Likes with
-- different ids arrive at once; an undone one leaves room for a new one. Duplicates that
-- got in before are closed first (the oldest stays).
UPDATE remote_interactions SET undone_at = created_at
WHERE undone_at IS NULL AND kind IN ('like', 'boost') AND id NOT IN (
    SELECT min(id) FROM remote_interactions
    WHERE undone_at IS NULL AND kind IN ('like', 'boost')
    GROUP BY kind, remote_actor_id, post_id
);
CREATE UNIQUE INDEX remote_interactions_one_reaction
ON remote_interactions (kind, remote_actor_id, post_id)
WHERE undone_at IS NULL AND kind IN ('like', 'boost');
