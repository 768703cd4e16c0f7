-- A photo's identity, to find duplicates: the SHA-256 (hex) of the file as it was
-- uploaded (before its location was removed). NULL for images uploaded before this.
ALTER TABLE images ADD COLUMN content_hash TEXT;
-- One image per photo and owner: two uploads of the same bytes at the same moment (each
-- checked before the other was stored) can't both be recorded. An image the purge has
-- claimed no longer counts, so the photo can be uploaded again while it goes.
CREATE UNIQUE INDEX images_owner_hash ON images (owner_id, content_hash)
    WHERE content_hash IS NOT NULL AND purge_token IS NULL;

-- How many bytes of originals a user may keep, the trash included; NULL: no limit.
ALTER TABLE users ADD COLUMN quota_bytes BIGINT;

-- The gallery in the order photos were taken (the upload time for those without a date).
CREATE INDEX images_owner_taken ON images (owner_id, (COALESCE(taken_at, created_at)) DESC, id DESC);
