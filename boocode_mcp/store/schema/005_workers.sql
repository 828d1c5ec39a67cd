-- Runs that any worker on any host may execute (a PostgreSQL store, see store/work.py). The
-- columns exist on sqlite too, where the workspace's own process runs everything and most of them
-- stay NULL: one schema for both.

-- Who runs it, where, and until when its lease holds (the database's clock, unix seconds).
ALTER TABLE subagents ADD COLUMN worker_id TEXT;
ALTER TABLE subagents ADD COLUMN worker_host TEXT;
ALTER TABLE subagents ADD COLUMN worker_pid INTEGER;
ALTER TABLE subagents ADD COLUMN worktree TEXT;       -- a path on the worker's host
ALTER TABLE subagents ADD COLUMN lease_expires_at REAL;
-- Only this worker may take it: a front end in that process follows the run in memory.
ALTER TABLE subagents ADD COLUMN pinned_worker TEXT;
-- The worker holding the chat's warm agent when the run was queued (others wait for it briefly).
ALTER TABLE subagents ADD COLUMN preferred_worker TEXT;
ALTER TABLE subagents ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
-- The requester's commit a worker starts the chat's worktree from (fetched from the remote).
ALTER TABLE subagents ADD COLUMN base_sha TEXT;
-- The requester's [permissions] (policy, timeout_s) as JSON: the policy travels with the run.
ALTER TABLE subagents ADD COLUMN permissions_json TEXT;

-- One live run per chat, enforced by the database, so that two hosts spawning on the same chat at
-- once cannot both win (sqlite's single writer made the spawn's own check enough). A database
-- that somehow holds two keeps the newest live.
UPDATE subagents SET status = 'interrupted',
    error = 'closed when a newer run of the same chat was found live during an upgrade'
WHERE status IN ('queued', 'running', 'awaiting_permission') AND EXISTS (
    SELECT 1 FROM subagents o WHERE o.chat_id = subagents.chat_id
    AND o.status IN ('queued', 'running', 'awaiting_permission') AND o.created_at > subagents.created_at
);
CREATE UNIQUE INDEX subagents_one_live_per_chat ON subagents(chat_id)
    WHERE status IN ('queued', 'running', 'awaiting_permission');
CREATE INDEX subagents_queued ON subagents(created_at) WHERE status = 'queued';

-- The workers serving a PostgreSQL store, as they last said (heartbeat on the database's clock).
CREATE TABLE workers (
    id            TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    repo          TEXT NOT NULL,     -- its clone, on its host
    capacity      INTEGER NOT NULL,  -- runs it takes at once ([pool] max_concurrent_runs)
    running       INTEGER NOT NULL DEFAULT 0,
    started_at    REAL NOT NULL,
    heartbeat_at  REAL NOT NULL,
    stopped_at    REAL
);

-- Which host's process holds an agent or a terminal: start-up recovery reaps only its own host's.
ALTER TABLE agent_sessions ADD COLUMN owner_host TEXT;
ALTER TABLE agent_sessions ADD COLUMN worker_id TEXT;  -- the worker holding the warm agent
ALTER TABLE terminals ADD COLUMN owner_host TEXT;

-- dialect: postgres
-- Every change of a run's status (or a cancel request) and every event is announced, so that
-- waiting front ends and idle workers on any host wake at once instead of polling.
CREATE FUNCTION boocode_run_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('boocode_runs', NEW.id || ' ' || NEW.status);
    RETURN NULL;
END
$$;
CREATE TRIGGER subagents_changed AFTER INSERT OR UPDATE OF status, cancel_requested ON subagents
    FOR EACH ROW EXECUTE FUNCTION boocode_run_changed();

CREATE FUNCTION boocode_event_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('boocode_events', NEW.subagent_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER events_added AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION boocode_event_added();

CREATE FUNCTION boocode_permission_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('boocode_permissions', NEW.subagent_id || ' ' || NEW.id || ' ' || NEW.status);
    RETURN NULL;
END
$$;
CREATE TRIGGER permissions_changed AFTER INSERT OR UPDATE OF status ON permissions
    FOR EACH ROW EXECUTE FUNCTION boocode_permission_changed();
