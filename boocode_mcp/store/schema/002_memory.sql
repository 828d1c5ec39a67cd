-- Memory (README, "Memory"): notes and finished subagent transcripts, searched through FTS5.
-- Owned by boocode_mcp/memory/; nothing else writes these tables.

-- One row per searchable entry: a heading section of a note, or one finished subagent run.
-- The small columns come first: ranking reads source and created_at for every match, and SQLite
-- would otherwise walk past a long body (overflow pages) to reach them.
CREATE TABLE memory (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL CHECK (source IN ('note', 'subagent')),
    created_at  REAL NOT NULL,     -- note: the file's mtime; subagent: when it ran (recency tie-break)
    ref         TEXT NOT NULL,     -- note: "<path>#<n>"; subagent: the subagent id
    path        TEXT,              -- note: the file it came from; subagent: NULL
    agent       TEXT,              -- subagent: the agent that ran it
    hash        TEXT NOT NULL,     -- of title/tags/body, so an unchanged entry is never rewritten
    title       TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '',
    body        TEXT NOT NULL DEFAULT '',
    UNIQUE (source, ref)
);
CREATE INDEX memory_path ON memory(path) WHERE path IS NOT NULL;
-- Ranking joins every FTS match to (source, created_at); this small covering index serves those
-- lookups without touching the wide rows (2-3x faster at 100k entries than the table itself).
CREATE INDEX memory_rank ON memory(id, source, created_at);

-- What the note index last saw of each file: refresh re-reads only files whose (mtime, size)
-- changed, and re-indexes only those whose content hash changed too.
CREATE TABLE memory_files (
    path        TEXT PRIMARY KEY,
    mtime_ns    INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    indexed_at  REAL NOT NULL
);

-- dialect: sqlite
-- External-content FTS5 over memory; prefix indexes keep `term*` queries cheap at 100k entries.
CREATE VIRTUAL TABLE memory_fts USING fts5(
    title, tags, body,
    content = 'memory', content_rowid = 'id',
    prefix = '2 3',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER memory_ai AFTER INSERT ON memory BEGIN
    INSERT INTO memory_fts(rowid, title, tags, body) VALUES (new.id, new.title, new.tags, new.body);
END;
CREATE TRIGGER memory_ad AFTER DELETE ON memory BEGIN
    INSERT INTO memory_fts(memory_fts, rowid, title, tags, body)
        VALUES ('delete', old.id, old.title, old.tags, old.body);
END;
-- Only a change of indexed text touches the FTS index (a note's mtime moving does not).
CREATE TRIGGER memory_au AFTER UPDATE OF title, tags, body ON memory BEGIN
    INSERT INTO memory_fts(memory_fts, rowid, title, tags, body)
        VALUES ('delete', old.id, old.title, old.tags, old.body);
    INSERT INTO memory_fts(rowid, title, tags, body) VALUES (new.id, new.title, new.tags, new.body);
END;

-- dialect: postgres
-- PostgreSQL full-text search over the same columns: one weighted tsvector per entry (title A,
-- tags B, body D), kept by the database itself, and a GIN index on it. Words are cut the way
-- sqlite's unicode61 tokenizer cuts them (every run of letters and digits is a word, anything else
-- separates), not by the parser's rules for URLs, paths and hyphenated words, and Latin letters
-- lose their diacritics as unicode61 folds them (boocode_fold; queries go through it too), so a
-- query matches the same words on both; the 'simple' configuration lowercases and never stems.
-- The body counts up to its first 250,000 characters (a tsvector holds at most 1 MB).
CREATE FUNCTION boocode_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT translate(t,
        'ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳḀḁḂḃḄḅḆḇḈḉḊḋḌḍḎḏḐḑḒḓḔḕḖḗḘḙḚḛḜḝḞḟḠḡḢḣḤḥḦḧḨḩḪḫḬḭḮḯḰḱḲḳḴḵḶḷḸḹḺḻḼḽḾḿṀṁṂṃṄṅṆṇṈṉṊṋṌṍṎṏṐṑṒṓṔṕṖṗṘṙṚṛṜṝṞṟṠṡṢṣṤṥṦṧṨṩṪṫṬṭṮṯṰṱṲṳṴṵṶṷṸṹṺṻṼṽṾṿẀẁẂẃẄẅẆẇẈẉẊẋẌẍẎẏẐẑẒẓẔẕẖẗẘẙẛẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹẺẻẼẽẾếỀềỂểỄễỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộỚớỜờỞởỠỡỢợỤụỦủỨứỪừỬửỮữỰựỲỳỴỵỶỷỸỹ',
        'AAAAAACEEEEIIIINOOOOOUUUUYaaaaaaceeeeiiiinooooouuuuyyAaAaAaCcCcCcCcDdEeEeEeEeEeGgGgGgGgHhIiIiIiIiIJjKkLlLlLlNnNnNnOoOoOoRrRrRrSsSsSsSsTtTtUuUuUuUuUuUuWwYyYZzZzZzsOoUuAaIiOoUuUuUuUuUuAaAaGgKkOoOojGgNnAaAaAaEeEeIiIiOoOoRrRrUuUuSsTtHhAaEeOoOoOoOoYyAaBbBbBbCcDdDdDdDdDdEeEeEeEeEeFfGgHhHhHhHhHhIiIiKkKkKkLlLlLlLlMmMmMmNnNnNnNnOoOoOoOoPpPpRrRrRrRrSsSsSsSsSsTtTtTtTtUuUuUuUuUuVvVvWwWwWwWwWwXxXxYyZzZzZzhtwysAaAaAaAaAaAaAaAaAaAaAaAaEeEeEeEeEeEeEeEeIiIiOoOoOoOoOoOoOoOoOoOoOoOoUuUuUuUuUuUuUuYyYyYyYy')
$$;
CREATE FUNCTION boocode_words(t text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT boocode_fold(regexp_replace(t, '[^[:alnum:]]+', ' ', 'g'))
$$;
ALTER TABLE memory ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple'::regconfig, boocode_words(title)), 'A')
    || setweight(to_tsvector('simple'::regconfig, boocode_words(tags)), 'B')
    || setweight(to_tsvector('simple'::regconfig, boocode_words(left(body, 250000))), 'D')
) STORED;
CREATE INDEX memory_search ON memory USING gin (search);
CREATE INDEX memory_source ON memory (source, id);
