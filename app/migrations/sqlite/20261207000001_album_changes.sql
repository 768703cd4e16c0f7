-- Albums join the change feed (app/src/cache.rs holds which albums each image is in): a
-- change of an album or of what it holds is reported as a change of its owner's images.
-- A row of album_images whose album is already gone (deleted with it) reports nothing;
-- the album's own trigger has. What the cache holds of an album is its title: an update
-- that changes neither title nor owner (a cover, `store::albums::lock`'s no-op) and a
-- member's new position report nothing.
CREATE TRIGGER albums_inserted AFTER INSERT ON albums
BEGIN
    INSERT INTO changes (scope, user_id) VALUES ('images', NEW.owner_id);
END;
CREATE TRIGGER albums_updated AFTER UPDATE ON albums
    WHEN OLD.title IS NOT NEW.title OR OLD.owner_id IS NOT NEW.owner_id
BEGIN
    INSERT INTO changes (scope, user_id) VALUES ('images', OLD.owner_id);
    INSERT INTO changes (scope, user_id) VALUES ('images', NEW.owner_id);
END;
CREATE TRIGGER albums_deleted AFTER DELETE ON albums
BEGIN
    INSERT INTO changes (scope, user_id) VALUES ('images', OLD.owner_id);
END;
CREATE TRIGGER album_images_inserted AFTER INSERT ON album_images
BEGIN
    INSERT INTO changes (scope, user_id)
        SELECT 'images', owner_id FROM albums WHERE id = NEW.album_id;
END;
CREATE TRIGGER album_images_deleted AFTER DELETE ON album_images
BEGIN
    INSERT INTO changes (scope, user_id)
        SELECT 'images', owner_id FROM albums WHERE id = OLD.album_id;
END;
