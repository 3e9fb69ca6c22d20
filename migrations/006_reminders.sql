-- 006: invitations sent again. A target that invites (prancer) sends a pending invitation
-- again once it is older than its setting; `last_remind_at` is when it last went out (ms),
-- and `accepted` is set once the platform showed the invitation accepted, after which it is
-- never sent again.
ALTER TABLE users ADD COLUMN last_remind_at INTEGER;
ALTER TABLE users ADD COLUMN accepted INTEGER NOT NULL DEFAULT 0;
