-- The trash. A deleted image keeps its row and objects with `trashed_at` set (ms since
-- the Unix epoch) and is hidden from the gallery; it can be restored until the purge
-- takes it. The purge (app/src/trash.rs) first claims a row, writing `purge_token` and
-- `purge_claimed_at`, so two instances never work on the same image and a claimed image
-- can no longer be restored; then it deletes the objects, then the row (only while its
-- own token is still there). A purge that dies midway leaves the claim; the next run
-- takes over claims older than its lease and finishes.
ALTER TABLE images ADD COLUMN trashed_at BIGINT;
ALTER TABLE images ADD COLUMN purge_token TEXT;
ALTER TABLE images ADD COLUMN purge_claimed_at BIGINT;
CREATE INDEX images_trashed ON images (trashed_at) WHERE trashed_at IS NOT NULL;
CREATE INDEX images_owner_trash ON images (owner_id, trashed_at) WHERE trashed_at IS NOT NULL;

-- Whose session this is, so a user can list their sessions and end one of them. Filled
-- from the session's own `uid` on every write; NULL for a session without a user.
ALTER TABLE sessions ADD COLUMN user_id BIGINT;
CREATE INDEX sessions_user ON sessions (user_id) WHERE user_id IS NOT NULL;
