-- The version of the users table: every change to a user, by any writer (this binary, an
-- older one, the sqlite3 shell), gives it a new random value in the same transaction. The
-- planner's index kept in a file beside the ledger (ledger/index_file.rs) is used only while
-- the version it was taken at is still the ledger's, from the ledger with the same id. Random
-- rather than counted: a ledger restored from a backup and changed again could count its way
-- back to the number a newer index file was taken at, but not draw the same 64-bit value.
INSERT INTO ledger_meta (name, value) VALUES ('users_version', CAST(random() AS TEXT));
INSERT INTO ledger_meta (name, value) VALUES ('ledger_id', lower(hex(randomblob(16))));
CREATE TRIGGER users_version_on_insert AFTER INSERT ON users BEGIN
    UPDATE ledger_meta SET value = CAST(random() AS TEXT) WHERE name = 'users_version';
END;
CREATE TRIGGER users_version_on_update AFTER UPDATE ON users BEGIN
    UPDATE ledger_meta SET value = CAST(random() AS TEXT) WHERE name = 'users_version';
END;
CREATE TRIGGER users_version_on_delete AFTER DELETE ON users BEGIN
    UPDATE ledger_meta SET value = CAST(random() AS TEXT) WHERE name = 'users_version';
END;
