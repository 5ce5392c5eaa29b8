-- The durable job queue (PostgreSQL). Jobs are written in the transaction of
-- the change that causes them and run after commit by leased workers.

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    max_attempts    BIGINT NOT NULL,
    run_at          TIMESTAMPTZ NOT NULL,
    leased_until    TIMESTAMPTZ,
    leased_by       TEXT,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ
);
CREATE INDEX jobs_due ON jobs (status, run_at);
