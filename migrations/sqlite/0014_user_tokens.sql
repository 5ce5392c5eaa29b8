-- One-time links emailed to portal users: an invitation to set a first
-- password, or a password reset. Only the SHA-256 of the token is kept; a
-- user has at most one live token per purpose, and using one ends them all.
CREATE TABLE user_tokens (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX user_tokens_user ON user_tokens (user_id, purpose);
