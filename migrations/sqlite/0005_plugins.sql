-- WebAssembly plugins (SQLite).

-- An uploaded component with its manifest, the admin's grants and
-- configuration. The component is kept here so that every node can load
-- it; nodes cache the compiled code on disk, keyed by its hash.
CREATE TABLE plugins (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    version        TEXT NOT NULL,
    world          TEXT NOT NULL,
    wit_version    TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    -- JSON arrays of capabilities.
    requested      TEXT NOT NULL,
    grants         TEXT NOT NULL,
    -- JSON object.
    config         TEXT NOT NULL,
    -- JSON object: fuel, memory_bytes, timeout_ms overrides.
    limits         TEXT NOT NULL,
    is_enabled     INTEGER NOT NULL DEFAULT 0,
    -- JSON: what the component imports and exports, for the admin.
    inspection     TEXT NOT NULL,
    component_hash TEXT NOT NULL,
    component_size INTEGER NOT NULL,
    component      BLOB NOT NULL,
    created_by_id  TEXT REFERENCES users (id),
    created_at     TEXT NOT NULL,
    modified_at    TEXT NOT NULL
);

-- Key-value storage of each plugin (host.storage-*).
CREATE TABLE plugin_storage (
    plugin_id TEXT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (plugin_id, key)
);

-- Every plugin call: what it cost and how it ended.
CREATE TABLE plugin_runs (
    id          TEXT PRIMARY KEY,
    plugin_id   TEXT REFERENCES plugins (id) ON DELETE SET NULL,
    plugin_name TEXT NOT NULL,
    world       TEXT NOT NULL,
    rule_id     TEXT REFERENCES rules (id) ON DELETE SET NULL,
    case_id     TEXT REFERENCES cases (id) ON DELETE SET NULL,
    outcome     TEXT NOT NULL,
    error       TEXT,
    log         TEXT NOT NULL,
    fuel_used   INTEGER NOT NULL,
    peak_memory INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    started_at  TEXT NOT NULL
);
CREATE INDEX plugin_runs_plugin ON plugin_runs (plugin_id, started_at);
CREATE INDEX plugin_runs_started ON plugin_runs (started_at);

-- A rule may run a `rule` plugin (by name) instead of a script.
ALTER TABLE rules ADD COLUMN plugin TEXT;
