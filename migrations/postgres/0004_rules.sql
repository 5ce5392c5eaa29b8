-- Workflow rules and their run log (PostgreSQL).

-- The author of what rules do: notes, cases and assignments made by a rule
-- name this user (and the rule, in the note's data). It cannot log in.
INSERT INTO users (id, username, name, user_type, is_active, password_hash, created_at, modified_at)
VALUES ('system', 'system', 'Docket rules', 'admin', FALSE, NULL, now(), now());

CREATE TABLE rules (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    hook        TEXT NOT NULL,
    condition   TEXT,
    script      TEXT NOT NULL,
    position    BIGINT NOT NULL DEFAULT 0,
    is_enabled  BOOLEAN NOT NULL DEFAULT TRUE,
    schedule    TEXT,
    case_filter TEXT,
    run_cap     BIGINT NOT NULL,
    next_run_at TIMESTAMPTZ,
    -- The number of the last case a scheduled run processed: the next run
    -- goes on after it, so a capped rule reaches every case in turn.
    schedule_cursor BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    modified_at TIMESTAMPTZ NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX rules_hook ON rules (hook, is_enabled, position);

CREATE TABLE rule_runs (
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
CREATE INDEX rule_runs_case ON rule_runs (case_id, started_at);
CREATE INDEX rule_runs_rule ON rule_runs (rule_id, started_at);
CREATE INDEX rule_runs_started ON rule_runs (started_at);

-- Least-busy assignment counts a candidate's open cases.
CREATE INDEX cases_assigned_status ON cases (assigned_user_id, status);
