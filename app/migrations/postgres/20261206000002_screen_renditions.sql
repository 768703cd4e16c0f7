-- Renditions of images for a screen (long edge 1600), made the first time a share link's
-- visitor opens one and kept beside the thumbnail (key: the thumbnail's, ".screen."
-- for ".thumb."). A row means the object is stored; it goes with its image.
CREATE TABLE screen_renditions (
    image_id     TEXT PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
