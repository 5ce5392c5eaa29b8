-- Docket foundation schema (SQLite). Append-only: later changes get new files.
-- Times are RFC 3339 text in UTC; booleans are 0/1; JSON is text.

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('case_number', 0);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    permissions TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    email         TEXT,
    user_type     TEXT NOT NULL CHECK (user_type IN ('admin', 'agent', 'portal', 'api')),
    is_active     INTEGER NOT NULL DEFAULT 1,
    password_hash TEXT,
    contact_id    TEXT REFERENCES contacts (id) ON DELETE SET NULL,
    preferences   TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL,
    modified_at   TEXT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE accounts (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    email            TEXT,
    phone            TEXT,
    website          TEXT,
    assigned_user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    created_by_id    TEXT REFERENCES users (id) ON DELETE SET NULL,
    modified_at      TEXT NOT NULL,
    modified_by_id   TEXT REFERENCES users (id) ON DELETE SET NULL,
    version          INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX accounts_name ON accounts (name);

CREATE TABLE contacts (
    id               TEXT PRIMARY KEY,
    first_name       TEXT,
    last_name        TEXT NOT NULL,
    phone            TEXT,
    assigned_user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    created_by_id    TEXT REFERENCES users (id) ON DELETE SET NULL,
    modified_at      TEXT NOT NULL,
    modified_by_id   TEXT REFERENCES users (id) ON DELETE SET NULL,
    version          INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX contacts_last_name ON contacts (last_name);

CREATE TABLE team_members (
    team_id  TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position TEXT,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE account_teams (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, team_id)
);

CREATE TABLE contact_teams (
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, team_id)
);

CREATE TABLE contact_emails (
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (contact_id, email)
);
CREATE INDEX contact_emails_email ON contact_emails (email);

CREATE TABLE contact_accounts (
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, account_id)
);
CREATE INDEX contact_accounts_account ON contact_accounts (account_id);

CREATE TABLE cases (
    id                 TEXT PRIMARY KEY,
    number             INTEGER NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    status             TEXT NOT NULL,
    priority           TEXT NOT NULL,
    case_type          TEXT,
    description        TEXT,
    account_id         TEXT REFERENCES accounts (id) ON DELETE SET NULL,
    contact_id         TEXT REFERENCES contacts (id) ON DELETE SET NULL,
    inbound_mailbox_id TEXT,
    is_internal        INTEGER NOT NULL DEFAULT 0,
    assigned_user_id   TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at         TEXT NOT NULL,
    created_by_id      TEXT REFERENCES users (id) ON DELETE SET NULL,
    modified_at        TEXT NOT NULL,
    modified_by_id     TEXT REFERENCES users (id) ON DELETE SET NULL,
    stream_updated_at  TEXT NOT NULL,
    version            INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX cases_status_number ON cases (status, number);
CREATE INDEX cases_assigned_number ON cases (assigned_user_id, number);
CREATE INDEX cases_account ON cases (account_id);
CREATE INDEX cases_contact ON cases (contact_id);
CREATE INDEX cases_created_by ON cases (created_by_id);
CREATE INDEX cases_created_at ON cases (created_at);
CREATE INDEX cases_modified_at ON cases (modified_at);

CREATE TABLE case_contacts (
    case_id    TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    PRIMARY KEY (case_id, contact_id)
);
CREATE INDEX case_contacts_contact ON case_contacts (contact_id);

CREATE TABLE case_teams (
    case_id TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    PRIMARY KEY (case_id, team_id)
);
CREATE INDEX case_teams_team ON case_teams (team_id);

CREATE TABLE notes (
    id          TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    note_type   TEXT NOT NULL,
    post        TEXT,
    data        TEXT NOT NULL DEFAULT '{}',
    is_internal INTEGER NOT NULL DEFAULT 0,
    author_id   TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL
);
CREATE INDEX notes_case_created ON notes (case_id, created_at);

-- Files live under the data directory (storage_key); rows record what and
-- where. An attachment is unlinked until a case (or later a note) takes it.
CREATE TABLE attachments (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    storage_key   TEXT NOT NULL,
    case_id       TEXT REFERENCES cases (id) ON DELETE CASCADE,
    note_id       TEXT REFERENCES notes (id) ON DELETE CASCADE,
    created_by_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX attachments_case ON attachments (case_id);

CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_prefix   TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX api_keys_user ON api_keys (user_id);
