-- Albums join the change feed (app/src/cache.rs holds which albums each image is in): a
-- change of an album or of what it holds is reported as a change of its owner's images.
-- A row of album_images whose album is already gone (deleted with it) reports nothing;
-- the album's own trigger has.
CREATE TRIGGER albums_inserted AFTER INSERT ON albums
BEGIN
    INSERT INTO changes (scope, user_id) VALUES ('images', NEW.owner_id);
END;
CREATE TRIGGER albums_updated AFTER UPDATE ON albums
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
CREATE TRIGGER album_images_updated AFTER UPDATE ON album_images
BEGIN
    INSERT INTO changes (scope, user_id)
        SELECT 'images', owner_id FROM albums WHERE id IN (OLD.album_id, NEW.album_id);
END;
CREATE TRIGGER album_images_deleted AFTER DELETE ON album_images
BEGIN
    INSERT INTO changes (scope, user_id)
        SELECT 'images', owner_id FROM albums WHERE id = OLD.album_id;
END;
