-- Albums of a user's images, and links that share an album or one image with people who
-- have no account. Tokens are stored only as their SHA-256; passwords as argon2 hashes.
CREATE TABLE albums (
    id          TEXT PRIMARY KEY,
    owner_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- The image shown for the album; the first one when NULL (or when it left the album).
    cover_id    TEXT REFERENCES images (id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX albums_owner ON albums (owner_id, created_at DESC);

-- An image may be in several albums; deleting an image for good takes it out of them.
CREATE TABLE album_images (
    album_id TEXT NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (album_id, image_id)
);
CREATE INDEX album_images_image ON album_images (image_id);

CREATE TABLE share_links (
    id             TEXT PRIMARY KEY,
    owner_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- What it shares: an album, or one image (exactly one of the two).
    album_id       TEXT REFERENCES albums (id) ON DELETE CASCADE,
    image_id       TEXT REFERENCES images (id) ON DELETE CASCADE,
    token_hash     TEXT NOT NULL UNIQUE,
    password_hash  TEXT,
    expires_at     INTEGER,
    allow_download BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    visits         INTEGER NOT NULL DEFAULT 0,
    last_used_at   INTEGER,
    CHECK ((album_id IS NULL) <> (image_id IS NULL))
);
CREATE INDEX share_links_owner ON share_links (owner_id, created_at DESC);

-- An admin can stop a user's sharing: their links stop working at once.
ALTER TABLE users ADD COLUMN sharing_disabled BOOLEAN NOT NULL DEFAULT FALSE;
