-- Photo details read from EXIF at upload (app/src/media/details.rs), for the image page
-- and for sorting by the date taken. `taken_at` is the camera's clock (no time zone) in
-- ms since the Unix epoch read as UTC. Of the location only whether the photo had one,
-- and whether it was kept in the stored original (`users.keep_location` at upload).
ALTER TABLE images ADD COLUMN taken_at BIGINT;
ALTER TABLE images ADD COLUMN camera TEXT;
ALTER TABLE images ADD COLUMN lens TEXT;
ALTER TABLE images ADD COLUMN focal_length TEXT;
ALTER TABLE images ADD COLUMN aperture TEXT;
ALTER TABLE images ADD COLUMN exposure TEXT;
ALTER TABLE images ADD COLUMN iso BIGINT;
ALTER TABLE images ADD COLUMN has_location BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE images ADD COLUMN location_kept BOOLEAN NOT NULL DEFAULT FALSE;

-- Keep the location in the originals this user uploads (off: it is removed at upload).
ALTER TABLE users ADD COLUMN keep_location BOOLEAN NOT NULL DEFAULT FALSE;
