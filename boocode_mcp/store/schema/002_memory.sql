-- Memory (DESIGN §2 memory/): notes and finished subagent transcripts, searched through FTS5.

CREATE TABLE memory (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL CHECK (source IN ('note', 'subagent')),
    ref         TEXT NOT NULL,     -- note: "<path>#<n>"; subagent: the subagent id
    path        TEXT,
    title       TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '',
    body        TEXT NOT NULL DEFAULT '',
    agent       TEXT,
    created_at  REAL NOT NULL,
    mtime       REAL,
    hash        TEXT,
    UNIQUE (source, ref)
);
CREATE INDEX memory_path ON memory(path);

CREATE VIRTUAL TABLE memory_fts USING fts5(
    title, tags, body,
    content = 'memory', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER memory_ai AFTER INSERT ON memory BEGIN
    INSERT INTO memory_fts(rowid, title, tags, body) VALUES (new.id, new.title, new.tags, new.body);
END;
CREATE TRIGGER memory_ad AFTER DELETE ON memory BEGIN
    INSERT INTO memory_fts(memory_fts, rowid, title, tags, body)
        VALUES ('delete', old.id, old.title, old.tags, old.body);
END;
CREATE TRIGGER memory_au AFTER UPDATE ON memory BEGIN
    INSERT INTO memory_fts(memory_fts, rowid, title, tags, body)
        VALUES ('delete', old.id, old.title, old.tags, old.body);
    INSERT INTO memory_fts(rowid, title, tags, body) VALUES (new.id, new.title, new.tags, new.body);
END;
