-- Follows and in-app notifications (PostgreSQL).

CREATE TABLE follows (
    case_id    TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (case_id, user_id)
);
CREATE INDEX follows_user ON follows (user_id);

-- "Global auto-follow": kept beside the preferences JSON so that new cases
-- find their automatic followers with an index, not a scan of every user.
CREATE TABLE user_auto_follow (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    entity_type TEXT NOT NULL,
    PRIMARY KEY (entity_type, user_id)
);

CREATE TABLE notifications (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    case_id        TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    note_id        TEXT NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    is_highlighted BOOLEAN NOT NULL DEFAULT FALSE,
    is_read        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_user ON notifications (user_id, is_read, created_at);
CREATE INDEX notifications_note ON notifications (note_id);
