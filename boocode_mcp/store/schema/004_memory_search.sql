-- Memory search with bounded cost (store/memory.py): the FTS5 index is rebuilt in place from the
-- `memory` table, which is untouched (about 20 s for 100k entries, once).
--
-- - `source` becomes an indexed FTS column, so a source filter is part of the full-text match
--   (FTS5 skips through both doclists) instead of a lookup in `memory` for every match. A query
--   word that could match a source name is restricted to {title tags body}, and bm25 gives the
--   column weight 0.
-- - prefix index 4 joins 2 and 3: a `term*` whose length has no prefix index makes FTS5 merge the
--   doclists of every term with that prefix, for every statement that uses it (5-15 ms at 100k
--   entries for a prefix of a very common word); four-letter prefixes are typed most. It costs
--   about a third more index and slower inserts.

-- On PostgreSQL nothing changes: its search (002) filters on `source` through an index.
-- dialect: sqlite
DROP TRIGGER memory_ai;
DROP TRIGGER memory_ad;
DROP TRIGGER memory_au;
DROP TABLE memory_fts;

CREATE VIRTUAL TABLE memory_fts USING fts5(
    title, tags, body, source,
    content = 'memory', content_rowid = 'id',
    prefix = '2 3 4',
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO memory_fts(memory_fts) VALUES ('rebuild');

CREATE TRIGGER memory_ai AFTER INSERT ON memory BEGIN
    INSERT INTO memory_fts(rowid, title, tags, body, source)
        VALUES (new.id, new.title, new.tags, new.body, new.source);
END;
CREATE TRIGGER memory_ad AFTER DELETE ON memory BEGIN
    INSERT INTO memory_fts(memory_fts, rowid, title, tags, body, source)
        VALUES ('delete', old.id, old.title, old.tags, old.body, old.source);
END;
-- Only a change of indexed text touches the FTS index (a note's mtime moving does not).
CREATE TRIGGER memory_au AFTER UPDATE OF title, tags, body, source ON memory BEGIN
    INSERT INTO memory_fts(memory_fts, rowid, title, tags, body, source)
        VALUES ('delete', old.id, old.title, old.tags, old.body, old.source);
    INSERT INTO memory_fts(rowid, title, tags, body, source)
        VALUES (new.id, new.title, new.tags, new.body, new.source);
END;
