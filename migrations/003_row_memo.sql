-- 003: what each user's last roster row normalized to, so that a no-change night does not
-- normalize a million rows again.
--
-- `row_digest` is a fingerprint of the row's raw cells (under the header, catalogs, defaults
-- and rostersync version it was read with); `row_state` fingerprints the profile, content
-- and status that row asks for; `row_email` the row's email. A pure memo: it says what a row
-- means, never what the platform holds, so it may be written by a plan that is not applied.
ALTER TABLE users ADD COLUMN row_digest INTEGER;
ALTER TABLE users ADD COLUMN row_state INTEGER;
ALTER TABLE users ADD COLUMN row_email INTEGER;

-- The planner's nightly scan reads these too, still from the index alone.
DROP INDEX users_digest;
CREATE INDEX users_digest ON users (key, profile_hash, content_hash, active, uuid, row_digest, row_state, row_email);
