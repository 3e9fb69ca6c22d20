-- The version of the users table: every change to a user, by any writer (this binary, an
-- older one, the sqlite3 shell), counts it up in the same transaction. The planner's index
-- kept in a file beside the ledger (ledger/index_file.rs) is used only while the version it
-- was taken at is still the ledger's, and the ledger's id is the one it was taken from.
INSERT INTO ledger_meta (name, value) VALUES ('users_version', '0');
INSERT INTO ledger_meta (name, value) VALUES ('ledger_id', lower(hex(randomblob(16))));
CREATE TRIGGER users_version_on_insert AFTER INSERT ON users BEGIN
    UPDATE ledger_meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'users_version';
END;
CREATE TRIGGER users_version_on_update AFTER UPDATE ON users BEGIN
    UPDATE ledger_meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'users_version';
END;
CREATE TRIGGER users_version_on_delete AFTER DELETE ON users BEGIN
    UPDATE ledger_meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'users_version';
END;
