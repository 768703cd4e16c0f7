-- Users, their images, sessions shared by every instance, and login throttling.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,
    full_name     TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    session_epoch INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE images (
    id                 TEXT PRIMARY KEY,
    owner_id           INTEGER NOT NULL REFERENCES users (id),
    storage_key        TEXT NOT NULL UNIQUE,
    thumb_key          TEXT NOT NULL UNIQUE,
    original_name      TEXT NOT NULL,
    content_type       TEXT NOT NULL,
    thumb_content_type TEXT NOT NULL,
    byte_size          INTEGER NOT NULL,
    width              INTEGER NOT NULL,
    height             INTEGER NOT NULL,
    created_at         INTEGER NOT NULL
);
CREATE INDEX images_owner_newest ON images (owner_id, created_at DESC, id DESC);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL
);
