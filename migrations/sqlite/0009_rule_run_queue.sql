-- Rule runs are written here first, in the transaction of the change they
-- belong to, then moved into rule_runs in batches (see run_log.rs). A
-- WITHOUT ROWID table with no other index is one B-tree: a change costs one
-- page of the write-ahead log for its runs instead of one per rule_runs
-- index, and the moves touch each rule_runs index once per batch.
CREATE TABLE rule_run_queue (
    id             TEXT PRIMARY KEY,
    rule_id        TEXT REFERENCES rules (id) ON DELETE SET NULL,
    rule_name      TEXT NOT NULL,
    case_id        TEXT REFERENCES cases (id) ON DELETE CASCADE,
    hook           TEXT NOT NULL,
    depth          INTEGER NOT NULL,
    outcome        TEXT NOT NULL,
    condition_held INTEGER,
    actions        TEXT NOT NULL,
    log            TEXT NOT NULL,
    error          TEXT,
    duration_us    INTEGER NOT NULL,
    started_at     TEXT NOT NULL
) WITHOUT ROWID;
