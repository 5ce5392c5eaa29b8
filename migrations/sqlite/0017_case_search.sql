-- Text search over case names and descriptions. A trigram index answers
-- the same question as a substring match (`LIKE '%words%'`) without
-- reading every case: at a million cases the scan took most of a second.
-- It also folds case for all of Unicode, as PostgreSQL's ILIKE does, where
-- LIKE folds only ASCII. Its row ids are the case numbers: the implicit
-- rowid of `cases` may change on VACUUM.
CREATE VIRTUAL TABLE cases_search USING fts5 (
    name, description, content = 'cases', content_rowid = 'number', tokenize = 'trigram'
);

-- New cases are added by the server in batches (store/src/search.rs):
-- indexing in each creation would write a new index segment per
-- transaction. Cases numbered up to `indexed_upto` are in the index;
-- searches scan the newer ones.
CREATE TABLE case_search_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto INTEGER NOT NULL
);
INSERT INTO case_search_state (id, indexed_upto) VALUES (1, 0);

-- Changes to cases already in the index are applied at once. (Saving a
-- case writes every column; only a changed text touches the index.)
CREATE TRIGGER cases_search_delete AFTER DELETE ON cases
WHEN old.number <= (SELECT indexed_upto FROM case_search_state) BEGIN
    INSERT INTO cases_search (cases_search, rowid, name, description)
        VALUES ('delete', old.number, old.name, old.description);
END;

CREATE TRIGGER cases_search_update AFTER UPDATE OF name, description ON cases
WHEN (old.name IS NOT new.name OR old.description IS NOT new.description)
    AND old.number <= (SELECT indexed_upto FROM case_search_state) BEGIN
    INSERT INTO cases_search (cases_search, rowid, name, description)
        VALUES ('delete', old.number, old.name, old.description);
    INSERT INTO cases_search (rowid, name, description) VALUES (new.number, new.name, new.description);
END;
