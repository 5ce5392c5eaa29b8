-- Knowledge-base articles carry attachments; they go with the article.
ALTER TABLE attachments ADD COLUMN article_id TEXT REFERENCES kb_articles (id) ON DELETE CASCADE;
CREATE INDEX attachments_article ON attachments (article_id);
