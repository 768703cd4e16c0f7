-- Users, their images, sessions shared by every instance, and login throttling.
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    full_name     TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    session_epoch BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE images (
    id                 TEXT PRIMARY KEY,
    owner_id           BIGINT NOT NULL REFERENCES users (id),
    storage_key        TEXT NOT NULL UNIQUE,
    thumb_key          TEXT NOT NULL UNIQUE,
    original_name      TEXT NOT NULL,
    content_type       TEXT NOT NULL,
    thumb_content_type TEXT NOT NULL,
    byte_size          BIGINT NOT NULL,
    width              BIGINT NOT NULL,
    height             BIGINT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX images_owner_newest ON images (owner_id, created_at DESC, id DESC);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL
);
