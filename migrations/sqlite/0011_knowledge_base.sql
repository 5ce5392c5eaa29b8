-- The knowledge base (issue 8): articles in a tree of categories,
-- published to portals, related to cases, searched in full text.

CREATE TABLE kb_categories (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent_id   TEXT REFERENCES kb_categories (id) ON DELETE CASCADE,
    sort_order  INTEGER NOT NULL,
    description TEXT,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX kb_categories_parent ON kb_categories (parent_id);

CREATE TABLE kb_articles (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    language         TEXT NOT NULL,
    -- YYYY-MM-DD: compared as text.
    publish_date     TEXT,
    expiration_date  TEXT,
    sort_order       INTEGER NOT NULL,
    description      TEXT,
    body             TEXT NOT NULL,
    assigned_user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    created_by_id    TEXT REFERENCES users (id) ON DELETE SET NULL,
    modified_at      TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX kb_articles_status ON kb_articles (status, sort_order);

CREATE TABLE kb_article_portals (
    article_id TEXT NOT NULL REFERENCES kb_articles (id) ON DELETE CASCADE,
    portal_id  TEXT NOT NULL REFERENCES portals (id) ON DELETE CASCADE,
    PRIMARY KEY (article_id, portal_id)
);
CREATE INDEX kb_article_portals_portal ON kb_article_portals (portal_id);

CREATE TABLE kb_article_categories (
    article_id  TEXT NOT NULL REFERENCES kb_articles (id) ON DELETE CASCADE,
    category_id TEXT NOT NULL REFERENCES kb_categories (id) ON DELETE CASCADE,
    PRIMARY KEY (article_id, category_id)
);
CREATE INDEX kb_article_categories_category ON kb_article_categories (category_id);

CREATE TABLE kb_article_cases (
    case_id    TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    article_id TEXT NOT NULL REFERENCES kb_articles (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (case_id, article_id)
);
CREATE INDEX kb_article_cases_article ON kb_article_cases (article_id);

-- Full text of the articles, kept by the store in the transaction that
-- writes the article. No stemming, as PostgreSQL's 'simple' configuration.
CREATE VIRTUAL TABLE kb_search USING fts5 (
    article_id UNINDEXED,
    name,
    description,
    body,
    tokenize = 'unicode61 remove_diacritics 2'
);
