-- `occurred_at` of the last platform event applied to each post (ms). An event retried
-- after a later one of the same post (the contract's one exception to per-user order)
-- must not undo it: a stale public version must not overwrite a private edit.
ALTER TABLE posts ADD COLUMN last_event_at BIGINT;
