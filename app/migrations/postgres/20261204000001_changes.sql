-- What changed, for the caches of every instance (app/src/cache.rs): each instance reads
-- the last 30 seconds of this feed five times a second. Triggers fill it, so every
-- writer counts: any instance, the `gallery users` CLI, an operator's psql.
--   scope 'auth':   a session or a user changed (every cached session and user may be stale)
--   scope 'images': the images of user_id changed
-- `at` is the database's clock at the insert (not at the transaction's start).
CREATE TABLE changes (
    id      BIGSERIAL PRIMARY KEY,
    scope   TEXT NOT NULL,
    user_id BIGINT,
    at      BIGINT NOT NULL DEFAULT ((extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
);
CREATE INDEX changes_at ON changes (at);

CREATE FUNCTION gallery_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO changes (scope) VALUES ('auth');
    RETURN NULL;
END
$$;

CREATE FUNCTION gallery_images_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO changes (scope, user_id) VALUES ('images', OLD.owner_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO changes (scope, user_id) VALUES ('images', NEW.owner_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_changed AFTER UPDATE OR DELETE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION gallery_auth_changed();
CREATE TRIGGER users_changed AFTER UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION gallery_auth_changed();
CREATE TRIGGER images_changed AFTER INSERT OR UPDATE OR DELETE ON images
    FOR EACH ROW EXECUTE FUNCTION gallery_images_changed();
