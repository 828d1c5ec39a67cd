-- Two costs on the path of every turn.
--
-- A session's pending patches (the collisions of a run's patch, looked up as each run finishes)
-- found from an index alone: a patch's status is stored after its diff, hunks and files, so
-- filtering rows on it read every diff of the session (whose superseded patches pile up turn
-- after turn) through its overflow pages.
CREATE INDEX patches_pending ON patches(session_id, status, created_at, id, chat_id);

-- dialect: sqlite
-- A run's usual change (its status, times or usage: two per turn) updates its run_stats row in
-- place, and the rollups by the difference, only when a counted figure moves (a run going from
-- queued to running moves none). Replacing the row, as 008 does, took its contribution out of
-- both rollups and put it back, and rewrote every index of run_stats. A run that moves to another
-- group (its agent, session, chat or creation time changed, or its day is another in the
-- daemon's time zone now) is still replaced, as before, so a day or a key never carries a
-- difference over from another. PostgreSQL keeps 008's trigger functions.
DROP TRIGGER run_stats_update;

-- A live run moving between live statuses (queued, running, awaiting a permission) changes no
-- figure: its run_stats row is left as it is (its status there tells only whether and how a run
-- ended, which is all the rollups and usage_stats read of it).
CREATE TRIGGER run_stats_update
AFTER UPDATE OF agent, session_id, chat_id, created_at, status, started_at, finished_at, usage_json
ON subagents
WHEN NEW.id IS OLD.id AND NEW.agent IS OLD.agent AND NEW.session_id IS OLD.session_id
    AND NEW.chat_id IS OLD.chat_id AND NEW.created_at IS OLD.created_at
    AND (SELECT day FROM run_stats WHERE subagent_id = OLD.id) IS date(NEW.created_at, 'unixepoch', 'localtime')
    AND NOT (OLD.status IN ('queued', 'running', 'awaiting_permission')
        AND NEW.status IN ('queued', 'running', 'awaiting_permission')
        AND NEW.finished_at IS OLD.finished_at AND NEW.usage_json IS OLD.usage_json
        AND (NEW.started_at IS OLD.started_at OR NEW.finished_at IS NULL))
BEGIN
    UPDATE run_stats
    SET (status, turn_ms, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost) = (
        SELECT status, turn_ms, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost
        FROM run_stats_source WHERE subagent_id = NEW.id
    )
    WHERE subagent_id = NEW.id;
END;

CREATE TRIGGER run_stats_regroup
AFTER UPDATE OF agent, session_id, chat_id, created_at, status, started_at, finished_at, usage_json
ON subagents
WHEN NOT (NEW.id IS OLD.id AND NEW.agent IS OLD.agent AND NEW.session_id IS OLD.session_id
    AND NEW.chat_id IS OLD.chat_id AND NEW.created_at IS OLD.created_at
    AND (SELECT day FROM run_stats WHERE subagent_id = OLD.id) IS date(NEW.created_at, 'unixepoch', 'localtime'))
BEGIN
    DELETE FROM run_stats WHERE subagent_id = OLD.id;
    INSERT INTO run_stats SELECT * FROM run_stats_source WHERE subagent_id = NEW.id;
END;

-- (A row updated in place keeps its day, agent and session: only the figures move.)
CREATE TRIGGER usage_change AFTER UPDATE ON run_stats
WHEN (OLD.status = 'completed', OLD.status = 'failed',
      OLD.status IN ('completed', 'failed', 'cancelled', 'interrupted'), OLD.turn_ms IS NOT NULL,
      OLD.input_tokens, OLD.output_tokens, OLD.cache_read_tokens, OLD.cache_write_tokens, OLD.cost)
  IS NOT (NEW.status = 'completed', NEW.status = 'failed',
      NEW.status IN ('completed', 'failed', 'cancelled', 'interrupted'), NEW.turn_ms IS NOT NULL,
      NEW.input_tokens, NEW.output_tokens, NEW.cache_read_tokens, NEW.cache_write_tokens, NEW.cost)
BEGIN
    UPDATE usage_rollup SET
        completed = completed + (NEW.status = 'completed') - (OLD.status = 'completed'),
        failed = failed + (NEW.status = 'failed') - (OLD.status = 'failed'),
        ended = ended + (NEW.status IN ('completed', 'failed', 'cancelled', 'interrupted'))
            - (OLD.status IN ('completed', 'failed', 'cancelled', 'interrupted')),
        turns = turns + (NEW.turn_ms IS NOT NULL) - (OLD.turn_ms IS NOT NULL),
        input_tokens = input_tokens + coalesce(NEW.input_tokens, 0) - coalesce(OLD.input_tokens, 0),
        input_n = input_n + (NEW.input_tokens IS NOT NULL) - (OLD.input_tokens IS NOT NULL),
        output_tokens = output_tokens + coalesce(NEW.output_tokens, 0) - coalesce(OLD.output_tokens, 0),
        output_n = output_n + (NEW.output_tokens IS NOT NULL) - (OLD.output_tokens IS NOT NULL),
        cache_read_tokens = cache_read_tokens + coalesce(NEW.cache_read_tokens, 0)
            - coalesce(OLD.cache_read_tokens, 0),
        cache_read_n = cache_read_n + (NEW.cache_read_tokens IS NOT NULL) - (OLD.cache_read_tokens IS NOT NULL),
        cache_write_tokens = cache_write_tokens + coalesce(NEW.cache_write_tokens, 0)
            - coalesce(OLD.cache_write_tokens, 0),
        cache_write_n = cache_write_n + (NEW.cache_write_tokens IS NOT NULL)
            - (OLD.cache_write_tokens IS NOT NULL),
        cost = cost + coalesce(NEW.cost, 0) - coalesce(OLD.cost, 0),
        cost_n = cost_n + (NEW.cost IS NOT NULL) - (OLD.cost IS NOT NULL)
    WHERE day = NEW.day AND (dim, key) IN (VALUES ('agent', NEW.agent), ('session', NEW.session_id));
END;
