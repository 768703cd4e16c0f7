-- What changed, for the caches of every instance (app/src/cache.rs): each instance reads
-- the last 30 seconds of this feed five times a second. Triggers fill it, so every
-- writer counts: the server, the `gallery users` CLI, an operator's sqlite3.
--   scope 'auth':   a session or a user changed (every cached session and user may be stale)
--   scope 'images': the images of user_id changed
-- `at` is the database's clock at the insert, in milliseconds since the Unix epoch.
CREATE TABLE changes (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    scope   TEXT NOT NULL,
    user_id INTEGER,
    at      INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);
CREATE INDEX changes_at ON changes (at);

CREATE TRIGGER sessions_updated AFTER UPDATE ON sessions
BEGIN
    INSERT INTO changes (scope) VALUES ('auth');
END;
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
BEGIN
    INSERT INTO changes (scope) VALUES ('auth');
END;
CREATE TRIGGER users_updated AFTER UPDATE ON users
BEGIN
    INSERT INTO changes (scope) VALUES ('auth');
END;
CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN
    INSERT INTO changes (scope) VALUES ('auth');
END;
CREATE TRIGGER images_inserted AFTER INSERT ON images
BEGIN
    INSERT INTO changes (scope, user_id) VALUES ('images', NEW.owner_id);
END;
CREATE TRIGGER images_updated AFTER UPDATE ON images
BEGIN
    INSERT INTO changes (scope, user_id) VALUES ('images', OLD.owner_id);
    INSERT INTO changes (scope, user_id) VALUES ('images', NEW.owner_id);
END;
CREATE TRIGGER images_deleted AFTER DELETE ON images
BEGIN
    INSERT INTO changes (scope, user_id) VALUES ('images', OLD.owner_id);
END;
