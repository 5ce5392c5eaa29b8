-- Rule runs are written here first, in the transaction of the change they
-- belong to, then moved into rule_runs in batches (see run_log.rs): a
-- change writes its runs to one table and one index instead of four, and
-- the moves touch each rule_runs index once per batch.
CREATE TABLE rule_run_queue (
    id             TEXT PRIMARY KEY,
    rule_id        TEXT REFERENCES rules (id) ON DELETE SET NULL,
    rule_name      TEXT NOT NULL,
    case_id        TEXT REFERENCES cases (id) ON DELETE CASCADE,
    hook           TEXT NOT NULL,
    depth          BIGINT NOT NULL,
    outcome        TEXT NOT NULL,
    condition_held BOOLEAN,
    actions        TEXT NOT NULL,
    log            TEXT NOT NULL,
    error          TEXT,
    duration_us    BIGINT NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL
);
