-- 002: op indexes that cost nothing while a plan is written.
--
-- A million-op plan spent a good part of its time keeping two full indexes of the ops table
-- (every op by state, every op by the run that finished it, NULL while pending). Now:
-- * pending ops are found by rowid range: every pending op belongs to the newest stored plan
--   (storing a plan withdraws the older pending ops), whose first op id is `runs.ops_from`;
-- * ops sending or in doubt, a handful at any time, are in a partial index;
-- * finished ops are indexed by run only once they are finished.
ALTER TABLE runs ADD COLUMN ops_from INTEGER;

DROP INDEX ops_by_state;
DROP INDEX ops_by_done_run;
-- Queries must repeat this WHERE clause word for word for SQLite to use the index.
CREATE INDEX ops_unsettled ON ops (state) WHERE state = 'sending' OR state = 'in_doubt';
CREATE INDEX ops_by_done_run ON ops (done_run_id) WHERE done_run_id IS NOT NULL;

-- Ledgers planned before this migration: their pending ops start at the oldest pending one.
UPDATE runs SET ops_from = (SELECT min(id) FROM ops WHERE state = 'pending')
 WHERE id = (SELECT max(run_id) FROM ops WHERE state = 'pending');
