-- 006: invitations sent again. A target that invites (prancer) sends a pending invitation
-- again once it is older than its setting; `last_remind_at` is when it last went out (ms),
-- and `accepted` is set once the platform showed the invitation accepted, after which it is
-- never sent again.
ALTER TABLE users ADD COLUMN last_remind_at INTEGER;
ALTER TABLE users ADD COLUMN accepted INTEGER NOT NULL DEFAULT 0;

-- The op journal takes the new kind `remind`. SQLite cannot change a CHECK in place, so the
-- table is rebuilt once, ids kept (runs.ops_from points at them) and its indexes recreated.
CREATE TABLE ops_new (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    key         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    -- The CHECKs are written as ORs: an IN list makes SQLite build a temporary b-tree per row.
    kind        TEXT NOT NULL CHECK (kind = 'create' OR kind = 'update' OR kind = 'enroll'
                                     OR kind = 'remove' OR kind = 'reenroll' OR kind = 'deactivate'
                                     OR kind = 'remind'),
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state = 'pending' OR state = 'sending' OR state = 'done'
                                     OR state = 'failed' OR state = 'in_doubt'),
    attempts    INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    message     TEXT,
    done_run_id INTEGER REFERENCES runs(id),
    updated_at  INTEGER NOT NULL
);
INSERT INTO ops_new SELECT id, run_id, key, seq, kind, payload, state, attempts, http_status,
                           message, done_run_id, updated_at FROM ops;
DROP TABLE ops;
ALTER TABLE ops_new RENAME TO ops;
-- Queries must repeat this WHERE clause word for word for SQLite to use the index.
CREATE INDEX ops_unsettled ON ops (state) WHERE state = 'sending' OR state = 'in_doubt';
CREATE INDEX ops_by_done_run ON ops (done_run_id) WHERE done_run_id IS NOT NULL;
