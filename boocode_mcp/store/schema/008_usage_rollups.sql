-- usage_stats over a workspace's whole history in tens of milliseconds (store/usage.py).
--
-- run_stats: one narrow row per run (its local day, what it is grouped by, its status, turn time,
-- and the usage its agent reported), kept by triggers on subagents, so every way a run is written
-- is counted. Its partial indexes hold each group's turn times in order: a median is a walk to the
-- middle of one group, not a sort of every run (a recent window is read from run_stats_created).
-- usage_agent_day and usage_session_day: per (local day, agent) and (local day, session), the
-- runs, outcomes, turns and usage sums, kept by triggers on run_stats. A sum counts the runs that
-- reported the figure (`*_n`), so a figure nobody reported reads as unknown, not as 0.
-- A day is the local day when the run was created: on sqlite the daemon's (date(..., 'localtime')),
-- on PostgreSQL the database session's TimeZone (boocode_day below).
--
-- The tables and indexes are shared; what fills them is per dialect: sqlite triggers with their
-- statements inline, PostgreSQL trigger functions.

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

CREATE TABLE usage_agent_day (
    day                  TEXT NOT NULL,
    agent                TEXT NOT NULL,
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
    PRIMARY KEY (day, agent)
);

CREATE TABLE usage_session_day (
    day                  TEXT NOT NULL,
    session_id           TEXT NOT NULL,
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
    -- Session first: grouping by session reads the table in its own order, with no sort.
    PRIMARY KEY (session_id, day)
);

-- dialect: sqlite
-- The runs already stored (the triggers below count the ones to come).
INSERT INTO run_stats (subagent_id, day, agent, session_id, chat_id, created_at, status, turn_ms,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost)
SELECT id, date(created_at, 'unixepoch', 'localtime'), agent, session_id, chat_id, created_at, status,
       CASE WHEN started_at IS NOT NULL AND finished_at IS NOT NULL
            THEN (finished_at - started_at) * 1000.0 END,
       json_extract(usage_json, '$.input_tokens'), json_extract(usage_json, '$.output_tokens'),
       json_extract(usage_json, '$.cache_read_tokens'), json_extract(usage_json, '$.cache_write_tokens'),
       json_extract(usage_json, '$.cost')
FROM subagents;

INSERT INTO usage_agent_day
SELECT day, agent, COUNT(*), SUM(status = 'completed'), SUM(status = 'failed'),
       SUM(status IN ('completed', 'failed', 'cancelled', 'interrupted')), COUNT(turn_ms),
       coalesce(SUM(input_tokens), 0), COUNT(input_tokens), coalesce(SUM(output_tokens), 0), COUNT(output_tokens),
       coalesce(SUM(cache_read_tokens), 0), COUNT(cache_read_tokens), coalesce(SUM(cache_write_tokens), 0),
       COUNT(cache_write_tokens), TOTAL(cost), COUNT(cost)
FROM run_stats GROUP BY day, agent;

INSERT INTO usage_session_day (day, session_id, runs, completed, failed, ended, turns, input_tokens,
    input_n, output_tokens, output_n, cache_read_tokens, cache_read_n, cache_write_tokens,
    cache_write_n, cost, cost_n)
SELECT day, session_id, COUNT(*), SUM(status = 'completed'), SUM(status = 'failed'),
       SUM(status IN ('completed', 'failed', 'cancelled', 'interrupted')), COUNT(turn_ms),
       coalesce(SUM(input_tokens), 0), COUNT(input_tokens), coalesce(SUM(output_tokens), 0), COUNT(output_tokens),
       coalesce(SUM(cache_read_tokens), 0), COUNT(cache_read_tokens), coalesce(SUM(cache_write_tokens), 0),
       COUNT(cache_write_tokens), TOTAL(cost), COUNT(cost)
FROM run_stats GROUP BY day, session_id;

-- subagents -> run_stats.
CREATE TRIGGER run_stats_insert AFTER INSERT ON subagents BEGIN
    INSERT INTO run_stats (subagent_id, day, agent, session_id, chat_id, created_at, status, turn_ms,
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost) VALUES (
        NEW.id, date(NEW.created_at, 'unixepoch', 'localtime'), NEW.agent, NEW.session_id, NEW.chat_id,
        NEW.created_at, NEW.status,
        CASE WHEN NEW.started_at IS NOT NULL AND NEW.finished_at IS NOT NULL
             THEN (NEW.finished_at - NEW.started_at) * 1000.0 END,
        json_extract(NEW.usage_json, '$.input_tokens'), json_extract(NEW.usage_json, '$.output_tokens'),
        json_extract(NEW.usage_json, '$.cache_read_tokens'),
        json_extract(NEW.usage_json, '$.cache_write_tokens'), json_extract(NEW.usage_json, '$.cost'));
END;

-- A changed run is counted again from scratch: its run_stats row is replaced, so its old
-- contribution leaves the rollups (usage_remove) and its new one joins them (usage_add).
CREATE TRIGGER run_stats_update
AFTER UPDATE OF agent, session_id, chat_id, created_at, status, started_at, finished_at, usage_json
ON subagents BEGIN
    DELETE FROM run_stats WHERE subagent_id = OLD.id;
    INSERT INTO run_stats (subagent_id, day, agent, session_id, chat_id, created_at, status, turn_ms,
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost) VALUES (
        NEW.id, date(NEW.created_at, 'unixepoch', 'localtime'), NEW.agent, NEW.session_id, NEW.chat_id,
        NEW.created_at, NEW.status,
        CASE WHEN NEW.started_at IS NOT NULL AND NEW.finished_at IS NOT NULL
             THEN (NEW.finished_at - NEW.started_at) * 1000.0 END,
        json_extract(NEW.usage_json, '$.input_tokens'), json_extract(NEW.usage_json, '$.output_tokens'),
        json_extract(NEW.usage_json, '$.cache_read_tokens'),
        json_extract(NEW.usage_json, '$.cache_write_tokens'), json_extract(NEW.usage_json, '$.cost'));
END;

CREATE TRIGGER run_stats_delete AFTER DELETE ON subagents BEGIN
    DELETE FROM run_stats WHERE subagent_id = OLD.id;
END;

-- run_stats -> the rollups: a run's row adds its contribution under its keys, and takes it away
-- again when it is replaced or deleted.
CREATE TRIGGER usage_add AFTER INSERT ON run_stats BEGIN
    INSERT INTO usage_agent_day VALUES (
        NEW.day, NEW.agent, 1, NEW.status = 'completed', NEW.status = 'failed',
        NEW.status IN ('completed', 'failed', 'cancelled', 'interrupted'), NEW.turn_ms IS NOT NULL,
        coalesce(NEW.input_tokens, 0), NEW.input_tokens IS NOT NULL,
        coalesce(NEW.output_tokens, 0), NEW.output_tokens IS NOT NULL,
        coalesce(NEW.cache_read_tokens, 0), NEW.cache_read_tokens IS NOT NULL,
        coalesce(NEW.cache_write_tokens, 0), NEW.cache_write_tokens IS NOT NULL,
        coalesce(NEW.cost, 0), NEW.cost IS NOT NULL)
    ON CONFLICT (day, agent) DO UPDATE SET
        runs = runs + excluded.runs, completed = completed + excluded.completed,
        failed = failed + excluded.failed, ended = ended + excluded.ended, turns = turns + excluded.turns,
        input_tokens = input_tokens + excluded.input_tokens, input_n = input_n + excluded.input_n,
        output_tokens = output_tokens + excluded.output_tokens, output_n = output_n + excluded.output_n,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        cache_read_n = cache_read_n + excluded.cache_read_n,
        cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
        cache_write_n = cache_write_n + excluded.cache_write_n,
        cost = cost + excluded.cost, cost_n = cost_n + excluded.cost_n;
    INSERT INTO usage_session_day VALUES (
        NEW.day, NEW.session_id, 1, NEW.status = 'completed', NEW.status = 'failed',
        NEW.status IN ('completed', 'failed', 'cancelled', 'interrupted'), NEW.turn_ms IS NOT NULL,
        coalesce(NEW.input_tokens, 0), NEW.input_tokens IS NOT NULL,
        coalesce(NEW.output_tokens, 0), NEW.output_tokens IS NOT NULL,
        coalesce(NEW.cache_read_tokens, 0), NEW.cache_read_tokens IS NOT NULL,
        coalesce(NEW.cache_write_tokens, 0), NEW.cache_write_tokens IS NOT NULL,
        coalesce(NEW.cost, 0), NEW.cost IS NOT NULL)
    ON CONFLICT (session_id, day) DO UPDATE SET
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
    UPDATE usage_agent_day SET
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
    WHERE day = OLD.day AND agent = OLD.agent;
    DELETE FROM usage_agent_day WHERE day = OLD.day AND agent = OLD.agent AND runs = 0;
    UPDATE usage_session_day SET
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
    WHERE day = OLD.day AND session_id = OLD.session_id;
    DELETE FROM usage_session_day WHERE day = OLD.day AND session_id = OLD.session_id AND runs = 0;
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

-- subagents -> run_stats: a changed run is counted again from scratch (its old row leaves, its new
-- one comes), as on sqlite.
CREATE FUNCTION boocode_run_stats_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM run_stats WHERE subagent_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO run_stats (subagent_id, day, agent, session_id, chat_id, created_at, status, turn_ms,
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost) VALUES (
            NEW.id, boocode_day(NEW.created_at), NEW.agent, NEW.session_id, NEW.chat_id,
            NEW.created_at, NEW.status,
            CASE WHEN NEW.started_at IS NOT NULL AND NEW.finished_at IS NOT NULL
                 THEN (NEW.finished_at - NEW.started_at) * 1000.0 END,
            boocode_usage_figure(NEW.usage_json, 'input_tokens')::bigint,
            boocode_usage_figure(NEW.usage_json, 'output_tokens')::bigint,
            boocode_usage_figure(NEW.usage_json, 'cache_read_tokens')::bigint,
            boocode_usage_figure(NEW.usage_json, 'cache_write_tokens')::bigint,
            boocode_usage_figure(NEW.usage_json, 'cost'));
    END IF;
    RETURN NULL;
END
$$;

-- Adds (s = 1) or takes away (s = -1) one run's contribution to both rollups; a key left with no
-- runs goes.
CREATE FUNCTION boocode_usage_apply(r run_stats, s INTEGER) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n_completed BIGINT := s * (r.status = 'completed')::int;
    n_failed BIGINT := s * (r.status = 'failed')::int;
    n_ended BIGINT := s * (r.status IN ('completed', 'failed', 'cancelled', 'interrupted'))::int;
    n_turns BIGINT := s * (r.turn_ms IS NOT NULL)::int;
BEGIN
    INSERT INTO usage_agent_day AS u VALUES (
        r.day, r.agent, s, n_completed, n_failed, n_ended, n_turns,
        s * coalesce(r.input_tokens, 0), s * (r.input_tokens IS NOT NULL)::int,
        s * coalesce(r.output_tokens, 0), s * (r.output_tokens IS NOT NULL)::int,
        s * coalesce(r.cache_read_tokens, 0), s * (r.cache_read_tokens IS NOT NULL)::int,
        s * coalesce(r.cache_write_tokens, 0), s * (r.cache_write_tokens IS NOT NULL)::int,
        s * coalesce(r.cost, 0), s * (r.cost IS NOT NULL)::int)
    ON CONFLICT (day, agent) DO UPDATE SET
        runs = u.runs + excluded.runs, completed = u.completed + excluded.completed,
        failed = u.failed + excluded.failed, ended = u.ended + excluded.ended, turns = u.turns + excluded.turns,
        input_tokens = u.input_tokens + excluded.input_tokens, input_n = u.input_n + excluded.input_n,
        output_tokens = u.output_tokens + excluded.output_tokens, output_n = u.output_n + excluded.output_n,
        cache_read_tokens = u.cache_read_tokens + excluded.cache_read_tokens,
        cache_read_n = u.cache_read_n + excluded.cache_read_n,
        cache_write_tokens = u.cache_write_tokens + excluded.cache_write_tokens,
        cache_write_n = u.cache_write_n + excluded.cache_write_n,
        cost = u.cost + excluded.cost, cost_n = u.cost_n + excluded.cost_n;
    DELETE FROM usage_agent_day WHERE day = r.day AND agent = r.agent AND runs = 0;
    INSERT INTO usage_session_day AS u VALUES (
        r.day, r.session_id, s, n_completed, n_failed, n_ended, n_turns,
        s * coalesce(r.input_tokens, 0), s * (r.input_tokens IS NOT NULL)::int,
        s * coalesce(r.output_tokens, 0), s * (r.output_tokens IS NOT NULL)::int,
        s * coalesce(r.cache_read_tokens, 0), s * (r.cache_read_tokens IS NOT NULL)::int,
        s * coalesce(r.cache_write_tokens, 0), s * (r.cache_write_tokens IS NOT NULL)::int,
        s * coalesce(r.cost, 0), s * (r.cost IS NOT NULL)::int)
    ON CONFLICT (session_id, day) DO UPDATE SET
        runs = u.runs + excluded.runs, completed = u.completed + excluded.completed,
        failed = u.failed + excluded.failed, ended = u.ended + excluded.ended, turns = u.turns + excluded.turns,
        input_tokens = u.input_tokens + excluded.input_tokens, input_n = u.input_n + excluded.input_n,
        output_tokens = u.output_tokens + excluded.output_tokens, output_n = u.output_n + excluded.output_n,
        cache_read_tokens = u.cache_read_tokens + excluded.cache_read_tokens,
        cache_read_n = u.cache_read_n + excluded.cache_read_n,
        cache_write_tokens = u.cache_write_tokens + excluded.cache_write_tokens,
        cache_write_n = u.cache_write_n + excluded.cache_write_n,
        cost = u.cost + excluded.cost, cost_n = u.cost_n + excluded.cost_n;
    DELETE FROM usage_session_day WHERE day = r.day AND session_id = r.session_id AND runs = 0;
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

-- The runs already stored, counted by the triggers as they land in run_stats.
INSERT INTO run_stats (subagent_id, day, agent, session_id, chat_id, created_at, status, turn_ms,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost)
SELECT id, boocode_day(created_at), agent, session_id, chat_id, created_at, status,
       CASE WHEN started_at IS NOT NULL AND finished_at IS NOT NULL THEN (finished_at - started_at) * 1000.0 END,
       boocode_usage_figure(usage_json, 'input_tokens')::bigint,
       boocode_usage_figure(usage_json, 'output_tokens')::bigint,
       boocode_usage_figure(usage_json, 'cache_read_tokens')::bigint,
       boocode_usage_figure(usage_json, 'cache_write_tokens')::bigint,
       boocode_usage_figure(usage_json, 'cost')
FROM subagents;
