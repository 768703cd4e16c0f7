-- A photo's identity, to find duplicates: the SHA-256 (hex) of the file as it was
-- uploaded (before its location was removed). NULL for images uploaded before this.
ALTER TABLE images ADD COLUMN content_hash TEXT;
CREATE INDEX images_owner_hash ON images (owner_id, content_hash);

-- How many bytes of originals a user may keep, the trash included; NULL: no limit.
ALTER TABLE users ADD COLUMN quota_bytes BIGINT;

-- The gallery in the order photos were taken (the upload time for those without a date).
CREATE INDEX images_owner_taken ON images (owner_id, (COALESCE(taken_at, created_at)) DESC, id DESC);
