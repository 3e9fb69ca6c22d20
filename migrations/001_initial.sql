-- 001: the first schema. Never edit a shipped migration; add the next number instead.

-- One row per invocation (plan, apply, run). A run's reports are in runs/<id>-<started>/.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    command     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT,
    summary     TEXT
);

-- What the platform holds for each roster key, as last confirmed by the API. A row changes
-- only in the same transaction that marks the op that changed it done, so it never claims a
-- state the platform did not acknowledge. `content` lists only what this tool enrolled.
CREATE TABLE users (
    key                 TEXT PRIMARY KEY,
    uuid                TEXT,
    email               TEXT NOT NULL,
    profile_hash        INTEGER NOT NULL,
    profile             TEXT NOT NULL,
    active              INTEGER NOT NULL,
    content_hash        INTEGER NOT NULL,
    content             TEXT NOT NULL,
    created_at          INTEGER,
    last_update_at      INTEGER,
    last_deactivate_at  INTEGER,
    last_enroll_at      INTEGER,
    last_remove_at      INTEGER,
    last_reenroll_at    INTEGER
) WITHOUT ROWID;
-- The planner reads every user's fingerprints each night; this covering index lets it scan
-- a few dozen bytes a user instead of whole rows with their profile JSON.
CREATE INDEX users_digest ON users (key, profile_hash, content_hash, active, uuid);

-- The op journal. An op moves pending -> sending -> done | failed, or to in_doubt when its
-- outcome is unknown; `sending` is committed before the request leaves. Pending ops of an
-- older plan are replaced when a new plan is written; nothing else is ever deleted.
CREATE TABLE ops (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    key         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    -- The CHECKs are written as ORs: an IN list makes SQLite build a temporary b-tree per row.
    kind        TEXT NOT NULL CHECK (kind = 'create' OR kind = 'update' OR kind = 'enroll'
                                     OR kind = 'remove' OR kind = 'reenroll' OR kind = 'deactivate'),
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state = 'pending' OR state = 'sending' OR state = 'done'
                                     OR state = 'failed' OR state = 'in_doubt'),
    attempts    INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    message     TEXT,
    done_run_id INTEGER REFERENCES runs(id),
    updated_at  INTEGER NOT NULL
);
-- Ops are looked up by state (pending, in doubt). The index holds the short state text only:
-- an index on the key would double the cost of writing a million-op plan.
CREATE INDEX ops_by_state ON ops (state);
CREATE INDEX ops_by_done_run ON ops (done_run_id);

-- Rows refused by ingest, per run.
CREATE TABLE rejects (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    line        INTEGER NOT NULL,
    column_name TEXT NOT NULL,
    reason      TEXT NOT NULL,
    original    TEXT NOT NULL
);
CREATE INDEX rejects_by_run ON rejects (run_id);
