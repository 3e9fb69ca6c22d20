-- 008: recertification. When a re-enrollment that answered a completion's expiry is
-- acknowledged, the completion it answered is recorded here, in the same transaction as the
-- op: the next plans see that expiry answered and send nothing more until a newer completion
-- of the same content expires in its turn. The completions themselves are the events file's
-- (see src/ledger/events.rs), kept apart so the event receiver never waits on a plan.
CREATE TABLE recertified (
    key           TEXT NOT NULL,
    content_uuid  TEXT NOT NULL,
    -- The completion (ms since the epoch) whose expiry the re-enrollment answered.
    completed_at  INTEGER NOT NULL,
    -- When the re-enrollment was acknowledged (ms since the epoch).
    reenrolled_at INTEGER NOT NULL,
    PRIMARY KEY (key, content_uuid)
) WITHOUT ROWID;
