//! End-to-end API tests: each starts the real `docket` binary on SQLite
//! and on PostgreSQL and talks HTTP to it.

mod support;

mod access;
mod attachments;
mod auth;
mod bad_input;
mod cases;
mod email;
mod invitations;
mod kb;
mod mailboxes;
mod operations;
mod plugins;
mod portal_pages;
mod portals;
mod records;
mod rules;
mod stream;
mod web_forms;
