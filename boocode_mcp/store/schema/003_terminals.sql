-- The process groups of agents' terminals (ACP terminal/create). A terminal leads a group of its
-- own, apart from its agent's, so a BooCode process that replaces a killed one reaps it from here.
-- A process is named by its pid and its start: "<boot id>:<start time in clock ticks after boot>",
-- which tells it apart from a later process that reused the pid.

CREATE TABLE terminals (
    id            TEXT PRIMARY KEY,   -- the terminal id handed to the agent
    pgid          INTEGER NOT NULL,   -- the terminal's process group (its leader's pid)
    leader_start  TEXT,               -- the leader's start, to tell a reused pgid apart
    owner_pid     INTEGER NOT NULL,   -- the BooCode process that started the terminal
    owner_start   TEXT,               -- that process's start: with owner_pid, who owns the row
    chat_id       TEXT,               -- no foreign key: a dropped chat must not drop the record
    agent         TEXT,
    command       TEXT NOT NULL,
    created_at    REAL NOT NULL
);
