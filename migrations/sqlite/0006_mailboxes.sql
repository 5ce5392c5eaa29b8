-- Email-to-case (SQLite): group mailboxes, every fetched message, the
-- Message-IDs that thread mail onto cases, and the auto-reply log.

CREATE TABLE mailboxes (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    -- The address customers write to.
    email_address      TEXT NOT NULL,
    -- JSON: host, port, security, username, folder (the password is apart,
    -- so that reading the settings never reads it).
    imap               TEXT NOT NULL,
    imap_password      TEXT NOT NULL DEFAULT '',
    is_active          INTEGER NOT NULL DEFAULT 1,
    create_case        INTEGER NOT NULL DEFAULT 1,
    -- direct, round-robin, least-busy, or the name of an assigner plugin.
    distribution       TEXT NOT NULL DEFAULT 'direct',
    assign_user_id     TEXT REFERENCES users (id) ON DELETE SET NULL,
    target_team_id     TEXT REFERENCES teams (id) ON DELETE SET NULL,
    target_position    TEXT,
    -- JSON array of team ids for new cases.
    team_ids           TEXT NOT NULL DEFAULT '[]',
    auto_reply         INTEGER NOT NULL DEFAULT 0,
    auto_reply_subject TEXT NOT NULL DEFAULT '',
    auto_reply_body    TEXT NOT NULL DEFAULT '',
    reply_from_address TEXT,
    reply_from_name    TEXT,
    reply_to_address   TEXT,
    reopen_on_reply    INTEGER NOT NULL DEFAULT 0,
    create_contacts    INTEGER NOT NULL DEFAULT 0,
    max_message_bytes  INTEGER NOT NULL,
    -- Where fetching stands: UIDs mean something only with UIDVALIDITY.
    uid_validity       INTEGER,
    last_uid           INTEGER NOT NULL DEFAULT 0,
    -- One node works a mailbox at a time.
    leased_by          TEXT,
    leased_until       TEXT,
    -- Status for the admin, and back-off after failures.
    last_success_at    TEXT,
    last_error         TEXT,
    last_error_at      TEXT,
    failures           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    TEXT,
    backlog            INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    version            INTEGER NOT NULL DEFAULT 1
);

-- Every message fetched, with what became of it. The raw message is kept
-- (NULL only for a message refused for its size before download).
CREATE TABLE inbound_emails (
    id           TEXT PRIMARY KEY,
    mailbox_id   TEXT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid_validity INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    message_id   TEXT,
    from_address TEXT,
    subject      TEXT,
    size         INTEGER NOT NULL,
    raw          BLOB,
    -- case, note, duplicate, automatic, own, dropped, quarantined, discarded
    status       TEXT NOT NULL,
    reason       TEXT,
    case_id      TEXT REFERENCES cases (id) ON DELETE SET NULL,
    received_at  TEXT NOT NULL,
    UNIQUE (mailbox_id, uid_validity, uid)
);
CREATE INDEX inbound_emails_status ON inbound_emails (mailbox_id, status, received_at);
CREATE INDEX inbound_emails_message ON inbound_emails (message_id);

-- Message-IDs of mail received onto or sent from a case: replies thread
-- by them. The key also makes one message one case, whichever mailboxes
-- and nodes see it.
CREATE TABLE email_messages (
    message_id TEXT PRIMARY KEY,
    case_id    TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    -- in or out
    direction  TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX email_messages_case ON email_messages (case_id);

-- Auto-replies sent, for the limit per address.
CREATE TABLE auto_replies (
    address TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX auto_replies_address ON auto_replies (address, sent_at);
