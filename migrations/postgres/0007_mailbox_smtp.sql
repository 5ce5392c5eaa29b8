-- A group mailbox may send through its own SMTP server (PostgreSQL).
-- JSON: host, port, security, username; NULL uses the server under Admin -> Email.
ALTER TABLE mailboxes ADD COLUMN smtp TEXT;
ALTER TABLE mailboxes ADD COLUMN smtp_password TEXT NOT NULL DEFAULT '';
