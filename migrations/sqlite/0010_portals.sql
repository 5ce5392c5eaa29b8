-- Portals and portal roles (issue 8). A portal user's roles merge with the
-- roles of the portal they are in; see core/domain/src/portal.rs.

CREATE TABLE portal_roles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    permissions TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE portals (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    is_active   INTEGER NOT NULL,
    is_default  INTEGER NOT NULL,
    branding    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
-- At most one default portal.
CREATE UNIQUE INDEX portals_default ON portals (is_default) WHERE is_default = 1;

CREATE TABLE portal_portal_roles (
    portal_id TEXT NOT NULL REFERENCES portals (id) ON DELETE CASCADE,
    role_id   TEXT NOT NULL REFERENCES portal_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (portal_id, role_id)
);
CREATE INDEX portal_portal_roles_role ON portal_portal_roles (role_id);

CREATE TABLE user_portal_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES portal_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_portal_roles_role ON user_portal_roles (role_id);
