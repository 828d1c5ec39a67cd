-- Core tables (docs/architecture.md, "Parts"). Timestamps are unix seconds (REAL); JSON columns hold
-- pydantic dumps.

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    created_at  REAL NOT NULL,
    label       TEXT
);

CREATE TABLE chats (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    agent       TEXT NOT NULL,
    worktree    TEXT NOT NULL,
    branch      TEXT,
    base_sha    TEXT,            -- the state later patches are diffed against (moves on apply)
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX chats_session ON chats(session_id, created_at);

CREATE TABLE agent_sessions (
    chat_id         TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    agent           TEXT NOT NULL,
    backend         TEXT NOT NULL DEFAULT 'acp',
    acp_session_id  TEXT,
    pid             INTEGER,
    pgid            INTEGER,
    owner_pid       INTEGER,     -- the BooCode process driving it; a dead owner means reap
    status          TEXT NOT NULL DEFAULT 'idle'
                    CHECK (status IN ('idle', 'active', 'crashed', 'closed')),
    last_active_at  REAL,
    input_tokens    INTEGER NOT NULL DEFAULT 0,
    output_tokens   INTEGER NOT NULL DEFAULT 0,
    cost            REAL NOT NULL DEFAULT 0,
    config_hash     TEXT,
    load_supported  INTEGER,
    note            TEXT,        -- e.g. "context not restored: agent cannot session/load"
    PRIMARY KEY (chat_id, agent)
);

CREATE TABLE subagents (
    id             TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    chat_id        TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    agent          TEXT NOT NULL,
    prompt         TEXT NOT NULL,
    model          TEXT,
    mode           TEXT,
    status         TEXT NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'awaiting_permission', 'completed',
                                     'failed', 'cancelled', 'interrupted')),
    created_at     REAL NOT NULL,
    started_at     REAL,
    finished_at    REAL,
    stop_reason    TEXT,
    final_message  TEXT,
    error          TEXT,
    usage_json     TEXT,
    patch_id       TEXT,
    owner_pid      INTEGER
);
CREATE INDEX subagents_session ON subagents(session_id, created_at);
CREATE INDEX subagents_chat ON subagents(chat_id, created_at);
CREATE INDEX subagents_status ON subagents(status);

CREATE TABLE events (
    subagent_id  TEXT NOT NULL REFERENCES subagents(id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   REAL NOT NULL,
    PRIMARY KEY (subagent_id, seq)
);

CREATE TABLE traces (
    id              INTEGER PRIMARY KEY,
    session_id      TEXT,
    subagent_id     TEXT,
    source          TEXT NOT NULL CHECK (source IN ('mcp', 'agent')),
    tool_name       TEXT NOT NULL,
    tool_call_id    TEXT,
    input           TEXT,
    output_excerpt  TEXT,
    started_at      REAL NOT NULL,
    finished_at     REAL,
    latency_ms      REAL,
    outcome         TEXT CHECK (outcome IN ('running', 'ok', 'error', 'cancelled')),
    error           TEXT,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    cost            REAL
);
CREATE INDEX traces_session ON traces(session_id, started_at);
CREATE UNIQUE INDEX traces_agent_call ON traces(subagent_id, tool_call_id) WHERE tool_call_id IS NOT NULL;

CREATE TABLE patches (
    id               TEXT PRIMARY KEY,
    session_id       TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    chat_id          TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    subagent_id      TEXT REFERENCES subagents(id) ON DELETE SET NULL,
    parent_patch_id  TEXT REFERENCES patches(id) ON DELETE SET NULL,
    agent            TEXT NOT NULL,
    base_sha         TEXT NOT NULL,
    diff             TEXT NOT NULL,  -- the unified diff as git produced it; what apply uses
    hunks_json       TEXT NOT NULL,
    files_json       TEXT NOT NULL,
    file_count       INTEGER NOT NULL,
    hunk_count       INTEGER NOT NULL,
    additions        INTEGER NOT NULL,
    deletions        INTEGER NOT NULL,
    failed_mid_turn  INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'applied', 'superseded', 'discarded', 'conflicted')),
    created_at       REAL NOT NULL,
    applied_at       REAL
);
CREATE INDEX patches_session ON patches(session_id, created_at);
CREATE INDEX patches_chat ON patches(chat_id, status);

CREATE TABLE permissions (
    id            TEXT PRIMARY KEY,   -- the request_id shown to hosts
    session_id    TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    subagent_id   TEXT NOT NULL REFERENCES subagents(id) ON DELETE CASCADE,
    title         TEXT NOT NULL,
    options_json  TEXT NOT NULL,
    deadline      REAL NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'answered', 'timed_out', 'cancelled')),
    decision      TEXT,
    created_at    REAL NOT NULL,
    decided_at    REAL
);
CREATE INDEX permissions_subagent ON permissions(subagent_id, status);
