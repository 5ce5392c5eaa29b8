-- A session opened at a portal's login page belongs to that portal: it is
-- sent only to that portal's pages and acts with that portal's roles.
-- Agent and API sessions have no portal.
ALTER TABLE sessions ADD COLUMN portal_id TEXT REFERENCES portals (id) ON DELETE CASCADE;
