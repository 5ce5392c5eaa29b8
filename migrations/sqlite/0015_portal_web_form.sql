-- A portal's public case form: enabled or not, the sites that may embed it
-- (CORS) and what its cases get (see WebForm in core/domain/src/portal.rs).
ALTER TABLE portals ADD COLUMN web_form TEXT NOT NULL DEFAULT '{}';
