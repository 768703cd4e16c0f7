-- Albums join the change feed (app/src/cache.rs holds which albums each image is in): a
-- change of an album or of what it holds is reported as a change of its owner's images.
-- A row of album_images whose album is already gone (deleted with it) reports nothing;
-- the album's own trigger has. What the cache holds of an album is its title: an update
-- that changes neither title nor owner (a cover, `store::albums::lock`'s no-op) and a
-- member's new position report nothing. Statement-level for album_images: adding a
-- selection inserts many rows at once.
-- Albums have an owner_id as images do: gallery_images_changed (20261204000001_changes.sql)
-- reports their rows.
CREATE FUNCTION gallery_album_images_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO changes (scope, user_id)
            SELECT DISTINCT 'images', a.owner_id FROM new_rows n JOIN albums a ON a.id = n.album_id;
    ELSE
        INSERT INTO changes (scope, user_id)
            SELECT DISTINCT 'images', a.owner_id FROM old_rows o JOIN albums a ON a.id = o.album_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER albums_added_or_deleted AFTER INSERT OR DELETE ON albums
    FOR EACH ROW EXECUTE FUNCTION gallery_images_changed();
CREATE TRIGGER albums_renamed AFTER UPDATE ON albums
    FOR EACH ROW
    WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.owner_id IS DISTINCT FROM NEW.owner_id)
    EXECUTE FUNCTION gallery_images_changed();
CREATE TRIGGER album_images_inserted AFTER INSERT ON album_images
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gallery_album_images_changed();
CREATE TRIGGER album_images_deleted AFTER DELETE ON album_images
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gallery_album_images_changed();
