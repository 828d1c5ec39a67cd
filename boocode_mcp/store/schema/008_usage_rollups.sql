-- usage_stats over a workspace's whole history in tens of milliseconds (store/usage.py).
--
-- run_stats: one narrow row per run (its local day, what it is grouped by, its status, turn time,
-- and the usage its agent reported), kept by triggers on subagents, so every way a run is written
-- is counted. Its partial indexes hold each group's turn times in order: a median is a walk to the
-- middle of one group, not a sort of every run (a recent window is read from run_stats_created).
-- usage_rollup: per (local day, agent) and per (local day, session), the runs, outcomes, turns and
-- usage sums, kept by triggers on run_stats. A sum counts the runs that reported the figure (`*_n`),
-- so a figure nobody reported reads as unknown, not as 0.
-- A day is the local day when the run was created: on sqlite the daemon's (date(..., 'localtime')),
-- on PostgreSQL the database session's TimeZone (boocode_day below).
--
-- The tables and indexes are shared; what fills them is per dialect: a view computing a run's
-- run_stats row (sqlite's date and JSON functions, or PostgreSQL's), and the triggers (statements
-- inline on sqlite, trigger functions on PostgreSQL).

CREATE TABLE run_stats (
    subagent_id        TEXT NOT NULL UNIQUE,
    day                TEXT NOT NULL,
    agent              TEXT NOT NULL,
    session_id         TEXT NOT NULL,
    chat_id            TEXT NOT NULL,
    created_at         REAL NOT NULL,
    status             TEXT NOT NULL,
    turn_ms            REAL,
    input_tokens       INTEGER,
    output_tokens      INTEGER,
    cache_read_tokens  INTEGER,
    cache_write_tokens INTEGER,
    cost               REAL
);
-- Every column a window of recent runs is counted from, so such a window (`since`) is read from
-- the index alone.
CREATE INDEX run_stats_created ON run_stats(
    created_at, day, agent, session_id, chat_id, status, turn_ms, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, cost
);
CREATE INDEX run_stats_chat ON run_stats(chat_id, created_at);
CREATE INDEX run_stats_agent_turn ON run_stats(agent, turn_ms, created_at) WHERE turn_ms IS NOT NULL;
CREATE INDEX run_stats_day_turn ON run_stats(day, turn_ms, created_at) WHERE turn_ms IS NOT NULL;
CREATE INDEX run_stats_session_turn ON run_stats(session_id, turn_ms, created_at) WHERE turn_ms IS NOT NULL;
CREATE INDEX run_stats_chat_turn ON run_stats(chat_id, turn_ms, created_at) WHERE turn_ms IS NOT NULL;

CREATE TABLE usage_rollup (
    dim                  TEXT NOT NULL CHECK (dim IN ('agent', 'session')),
    key                  TEXT NOT NULL,  -- the agent's name or the session's id
    day                  TEXT NOT NULL,
    runs                 INTEGER NOT NULL,
    completed            INTEGER NOT NULL,
    failed               INTEGER NOT NULL,
    ended                INTEGER NOT NULL,
    turns                INTEGER NOT NULL,
    input_tokens         INTEGER NOT NULL,
    input_n              INTEGER NOT NULL,
    output_tokens        INTEGER NOT NULL,
    output_n             INTEGER NOT NULL,
    cache_read_tokens    INTEGER NOT NULL,
    cache_read_n         INTEGER NOT NULL,
    cache_write_tokens   INTEGER NOT NULL,
    cache_write_n        INTEGER NOT NULL,
    cost                 REAL NOT NULL,
    cost_n               INTEGER NOT NULL,
    -- Grouping by agent or session reads the table in its own order, with no sort (and, without
    -- a rowid, reads the rows themselves in that order rather than through an index).
    PRIMARY KEY (dim, key, day)
) WITHOUT ROWID;

-- dialect: sqlite
-- A run as its run_stats row.
CREATE VIEW run_stats_source AS
SELECT id AS subagent_id, date(created_at, 'unixepoch', 'localtime') AS day, agent, session_id, chat_id,
       created_at, status,
       CASE WHEN started_at IS NOT NULL AND finished_at IS NOT NULL THEN (finished_at - started_at) * 1000.0 END
           AS turn_ms,
       json_extract(usage_json, '$.input_tokens') AS input_tokens,
       json_extract(usage_json, '$.output_tokens') AS output_tokens,
       json_extract(usage_json, '$.cache_read_tokens') AS cache_read_tokens,
       json_extract(usage_json, '$.cache_write_tokens') AS cache_write_tokens,
       json_extract(usage_json, '$.cost') AS cost
FROM subagents;

-- run_stats -> the rollups: a run's row adds its contribution under its agent and its session, and
-- takes it away again when it is replaced or deleted; a key left with no runs goes.
CREATE TRIGGER usage_add AFTER INSERT ON run_stats BEGIN
    INSERT INTO usage_rollup
    SELECT d.dim, d.key, NEW.day, 1, NEW.status = 'completed', NEW.status = 'failed',
        NEW.status IN ('completed', 'failed', 'cancelled', 'interrupted'), NEW.turn_ms IS NOT NULL,
        coalesce(NEW.input_tokens, 0), NEW.input_tokens IS NOT NULL,
        coalesce(NEW.output_tokens, 0), NEW.output_tokens IS NOT NULL,
        coalesce(NEW.cache_read_tokens, 0), NEW.cache_read_tokens IS NOT NULL,
        coalesce(NEW.cache_write_tokens, 0), NEW.cache_write_tokens IS NOT NULL,
        coalesce(NEW.cost, 0), NEW.cost IS NOT NULL
    FROM (SELECT 'agent' AS dim, NEW.agent AS key UNION ALL SELECT 'session', NEW.session_id) AS d
    WHERE true  -- an upsert's SELECT needs a WHERE, so ON CONFLICT is not read as a join
    ON CONFLICT (dim, key, day) DO UPDATE SET
        runs = runs + excluded.runs, completed = completed + excluded.completed,
        failed = failed + excluded.failed, ended = ended + excluded.ended, turns = turns + excluded.turns,
        input_tokens = input_tokens + excluded.input_tokens, input_n = input_n + excluded.input_n,
        output_tokens = output_tokens + excluded.output_tokens, output_n = output_n + excluded.output_n,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        cache_read_n = cache_read_n + excluded.cache_read_n,
        cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
        cache_write_n = cache_write_n + excluded.cache_write_n,
        cost = cost + excluded.cost, cost_n = cost_n + excluded.cost_n;
END;

CREATE TRIGGER usage_remove AFTER DELETE ON run_stats BEGIN
    UPDATE usage_rollup SET
        runs = runs - 1, completed = completed - (OLD.status = 'completed'),
        failed = failed - (OLD.status = 'failed'),
        ended = ended - (OLD.status IN ('completed', 'failed', 'cancelled', 'interrupted')),
        turns = turns - (OLD.turn_ms IS NOT NULL),
        input_tokens = input_tokens - coalesce(OLD.input_tokens, 0),
        input_n = input_n - (OLD.input_tokens IS NOT NULL),
        output_tokens = output_tokens - coalesce(OLD.output_tokens, 0),
        output_n = output_n - (OLD.output_tokens IS NOT NULL),
        cache_read_tokens = cache_read_tokens - coalesce(OLD.cache_read_tokens, 0),
        cache_read_n = cache_read_n - (OLD.cache_read_tokens IS NOT NULL),
        cache_write_tokens = cache_write_tokens - coalesce(OLD.cache_write_tokens, 0),
        cache_write_n = cache_write_n - (OLD.cache_write_tokens IS NOT NULL),
        cost = cost - coalesce(OLD.cost, 0), cost_n = cost_n - (OLD.cost IS NOT NULL)
    WHERE day = OLD.day AND (dim, key) IN (VALUES ('agent', OLD.agent), ('session', OLD.session_id));
    DELETE FROM usage_rollup
    WHERE day = OLD.day AND (dim, key) IN (VALUES ('agent', OLD.agent), ('session', OLD.session_id)) AND runs = 0;
END;

-- subagents -> run_stats: a changed run is counted again from scratch (its row is replaced, so its
-- old contribution leaves the rollups and its new one joins them).
CREATE TRIGGER run_stats_insert AFTER INSERT ON subagents BEGIN
    INSERT INTO run_stats SELECT * FROM run_stats_source WHERE subagent_id = NEW.id;
END;

CREATE TRIGGER run_stats_update
AFTER UPDATE OF agent, session_id, chat_id, created_at, status, started_at, finished_at, usage_json
ON subagents BEGIN
    DELETE FROM run_stats WHERE subagent_id = OLD.id;
    INSERT INTO run_stats SELECT * FROM run_stats_source WHERE subagent_id = NEW.id;
END;

CREATE TRIGGER run_stats_delete AFTER DELETE ON subagents BEGIN
    DELETE FROM run_stats WHERE subagent_id = OLD.id;
END;

-- dialect: postgres
-- The same day sqlite's date(t, 'unixepoch', 'localtime') gives, in the session's time zone.
CREATE FUNCTION boocode_day(t DOUBLE PRECISION) RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT to_char(to_timestamp(t), 'YYYY-MM-DD')
$$;

-- One figure of a run's usage_json (NULL when it was not reported).
CREATE FUNCTION boocode_usage_figure(usage TEXT, figure TEXT) RETURNS DOUBLE PRECISION
LANGUAGE sql IMMUTABLE AS $$
    SELECT (usage::jsonb ->> figure)::double precision
$$;

-- A run as its run_stats row.
CREATE VIEW run_stats_source AS
SELECT id AS subagent_id, boocode_day(created_at) AS day, agent, session_id, chat_id, created_at, status,
       CASE WHEN started_at IS NOT NULL AND finished_at IS NOT NULL THEN (finished_at - started_at) * 1000.0 END
           AS turn_ms,
       boocode_usage_figure(usage_json, 'input_tokens')::bigint AS input_tokens,
       boocode_usage_figure(usage_json, 'output_tokens')::bigint AS output_tokens,
       boocode_usage_figure(usage_json, 'cache_read_tokens')::bigint AS cache_read_tokens,
       boocode_usage_figure(usage_json, 'cache_write_tokens')::bigint AS cache_write_tokens,
       boocode_usage_figure(usage_json, 'cost') AS cost
FROM subagents;

-- subagents -> run_stats, as on sqlite.
CREATE FUNCTION boocode_run_stats_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM run_stats WHERE subagent_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO run_stats SELECT * FROM run_stats_source WHERE subagent_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

-- run_stats -> the rollups: adds (s = 1) or takes away (s = -1) one run's contribution under its
-- agent and its session; a key left with no runs goes.
CREATE FUNCTION boocode_usage_apply(r run_stats, s INTEGER) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_rollup AS u
    SELECT d.dim, d.key, r.day, s, s * (r.status = 'completed')::int, s * (r.status = 'failed')::int,
        s * (r.status IN ('completed', 'failed', 'cancelled', 'interrupted'))::int,
        s * (r.turn_ms IS NOT NULL)::int,
        s * coalesce(r.input_tokens, 0), s * (r.input_tokens IS NOT NULL)::int,
        s * coalesce(r.output_tokens, 0), s * (r.output_tokens IS NOT NULL)::int,
        s * coalesce(r.cache_read_tokens, 0), s * (r.cache_read_tokens IS NOT NULL)::int,
        s * coalesce(r.cache_write_tokens, 0), s * (r.cache_write_tokens IS NOT NULL)::int,
        s * coalesce(r.cost, 0), s * (r.cost IS NOT NULL)::int
    FROM (VALUES ('agent', r.agent), ('session', r.session_id)) AS d(dim, key)
    ON CONFLICT (dim, key, day) DO UPDATE SET
        runs = u.runs + excluded.runs, completed = u.completed + excluded.completed,
        failed = u.failed + excluded.failed, ended = u.ended + excluded.ended, turns = u.turns + excluded.turns,
        input_tokens = u.input_tokens + excluded.input_tokens, input_n = u.input_n + excluded.input_n,
        output_tokens = u.output_tokens + excluded.output_tokens, output_n = u.output_n + excluded.output_n,
        cache_read_tokens = u.cache_read_tokens + excluded.cache_read_tokens,
        cache_read_n = u.cache_read_n + excluded.cache_read_n,
        cache_write_tokens = u.cache_write_tokens + excluded.cache_write_tokens,
        cache_write_n = u.cache_write_n + excluded.cache_write_n,
        cost = u.cost + excluded.cost, cost_n = u.cost_n + excluded.cost_n;
    DELETE FROM usage_rollup
    WHERE day = r.day AND (dim, key) IN (('agent', r.agent), ('session', r.session_id)) AND runs = 0;
END
$$;

CREATE FUNCTION boocode_usage_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM boocode_usage_apply(OLD, -1);
    ELSE
        PERFORM boocode_usage_apply(NEW, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER usage_changed AFTER INSERT OR DELETE ON run_stats
    FOR EACH ROW EXECUTE FUNCTION boocode_usage_changed();
CREATE TRIGGER run_stats_changed
    AFTER INSERT OR DELETE OR UPDATE OF agent, session_id, chat_id, created_at, status, started_at,
    finished_at, usage_json ON subagents
    FOR EACH ROW EXECUTE FUNCTION boocode_run_stats_changed();

-- dialect: all
-- The runs already stored, counted by the triggers above as they land in run_stats.
INSERT INTO run_stats SELECT * FROM run_stats_source;
