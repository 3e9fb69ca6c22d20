-- 004: users are looked up by their platform UUID before a create's or an adoption's answer is
-- recorded: one account must never be recorded under two roster keys (a later deactivation of
-- one key would deactivate the other person too). Not UNIQUE: a ledger written before this
-- check may already hold such a pair, and it must still open so the pair can be found.
CREATE INDEX users_by_uuid ON users (uuid);
