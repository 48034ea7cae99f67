ALTER TABLE posts DROP COLUMN last_event_at;
