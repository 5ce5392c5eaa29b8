-- A mailbox may skip older mail in its folder (SQLite): only messages the
-- server received on or after this day (YYYY-MM-DD) are fetched.
ALTER TABLE mailboxes ADD COLUMN fetch_since TEXT;
