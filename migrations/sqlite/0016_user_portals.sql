-- The portals a portal user may log in to besides the default portal (which
-- every portal user may use). Another portal's roles may reach further, so
-- using it is granted, never assumed.
CREATE TABLE user_portals (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    portal_id TEXT NOT NULL REFERENCES portals (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, portal_id)
);
CREATE INDEX user_portals_portal ON user_portals (portal_id);
