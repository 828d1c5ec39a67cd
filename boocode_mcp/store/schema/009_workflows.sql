-- Workflows (boocode_mcp/workflows/): runs of workflow scripts, the steps each started (subagent
-- runs, or results taken from the step cache), what their scripts logged, and the step cache.

-- One run of a workflow script. Its steps live in a session of its own (`session_id`), so their
-- chats and patches (best-of-n makes several competing ones) stay apart from the caller's.
CREATE TABLE workflow_runs (
    id             TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    source         TEXT NOT NULL CHECK (source IN ('workspace', 'user', 'builtin')),
    path           TEXT NOT NULL,
    args_json      TEXT NOT NULL,
    base_sha       TEXT,              -- the commit every step's worktree starts from
    status         TEXT NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled',
                                     'interrupted')),
    result_json    TEXT,
    error          TEXT,
    usage_json     TEXT,              -- what this run spent: tokens and cost of the steps it dispatched
    created_at     REAL NOT NULL,
    started_at     REAL,
    finished_at    REAL,
    owner_pid      INTEGER,           -- the BooCode process driving it; a dead owner means interrupted
    sandbox_pgid   INTEGER,           -- the process group of its script's sandbox, reaped at start-up
    sandbox_start  TEXT               -- the sandbox leader's start, to tell a reused pgid apart
);
CREATE INDEX workflow_runs_status ON workflow_runs(status);
CREATE INDEX workflow_runs_session ON workflow_runs(session_id, created_at);

-- One agent() step as its run started it. A dispatched step links its subagent run, whose row
-- holds its live status, usage and patch; a cached one holds the result it was given.
CREATE TABLE workflow_steps (
    workflow_run_id  TEXT NOT NULL REFERENCES workflow_runs(id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,    -- in the order the script started them
    step_id          TEXT NOT NULL,
    phase            TEXT,
    agent            TEXT NOT NULL,
    cache_key        TEXT NOT NULL,
    cached           INTEGER NOT NULL DEFAULT 0,
    subagent_id      TEXT REFERENCES subagents(id) ON DELETE SET NULL,
    patch_id         TEXT,
    status           TEXT NOT NULL
                     CHECK (status IN ('queued', 'running', 'awaiting_permission', 'completed',
                                       'failed', 'cancelled', 'interrupted')),
    usage_json       TEXT,
    error            TEXT,
    created_at       REAL NOT NULL,
    PRIMARY KEY (workflow_run_id, seq)
);
CREATE INDEX workflow_steps_subagent ON workflow_steps(subagent_id);

-- log() lines of a run, in order.
CREATE TABLE workflow_logs (
    workflow_run_id  TEXT NOT NULL REFERENCES workflow_runs(id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    message          TEXT NOT NULL,
    phase            TEXT,
    created_at       REAL NOT NULL,
    PRIMARY KEY (workflow_run_id, seq)
);

-- Results of completed steps by what they were asked (bounded, least recently used first out).
-- No foreign keys: a cached result stands whatever becomes of the run that produced it.
CREATE TABLE workflow_step_cache (
    key          TEXT PRIMARY KEY,   -- SHA-256 of canonical {step_id, prompt, agent, model, mode, base}
    step_id      TEXT NOT NULL,
    subagent_id  TEXT NOT NULL,
    patch_id     TEXT,
    result_json  TEXT NOT NULL,      -- {text, files, usage}
    created_at   REAL NOT NULL,
    used_at      REAL NOT NULL
);
CREATE INDEX workflow_step_cache_used ON workflow_step_cache(used_at);
