-- Each restore of the database (`provision up` from a snapshot, `provision restore`)
-- ends every session once: the first instance to boot on the restored database records
-- the restore here and deletes the sessions in the same transaction.
CREATE TABLE restores (
    id             TEXT PRIMARY KEY,
    sessions_ended BIGINT NOT NULL,
    at             BIGINT NOT NULL
);
