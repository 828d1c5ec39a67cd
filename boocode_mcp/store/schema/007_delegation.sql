-- Subagents that delegate, and the operations around runs (README, "BooCode inside every agent
-- session").

-- A run started by a subagent through BooCode's MCP server names its parent; a host's run is
-- depth 0, its children depth 1. A retry names the run it re-runs. A run's prompt images are
-- kept as the attachments they were stored as (content-addressed under .boocode/attachments/).
ALTER TABLE subagents ADD COLUMN parent_subagent_id TEXT REFERENCES subagents(id) ON DELETE SET NULL;
ALTER TABLE subagents ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subagents ADD COLUMN retry_of TEXT REFERENCES subagents(id) ON DELETE SET NULL;
ALTER TABLE subagents ADD COLUMN images_json TEXT;
CREATE INDEX subagents_parent ON subagents(parent_subagent_id) WHERE parent_subagent_id IS NOT NULL;
CREATE INDEX subagents_retry ON subagents(retry_of) WHERE retry_of IS NOT NULL;

-- The last time applying a pending patch conflicted, and why (what the inbox shows); the patch
-- stays pending, so it can be applied once the workspace allows it.
ALTER TABLE patches ADD COLUMN conflict_json TEXT;
ALTER TABLE patches ADD COLUMN conflicted_at REAL;
CREATE INDEX patches_conflicted ON patches(conflicted_at) WHERE conflicted_at IS NOT NULL;

-- What each agent said it can do the last time it started (its ACP initialize answer): whether
-- it takes images is known before its next run starts.
CREATE TABLE agent_capabilities (
    agent             TEXT PRIMARY KEY,
    image             INTEGER NOT NULL,
    audio             INTEGER NOT NULL,
    embedded_context  INTEGER NOT NULL,
    mcp_http          INTEGER NOT NULL,
    mcp_sse           INTEGER NOT NULL,
    load_session      INTEGER NOT NULL,
    agent_name        TEXT,
    agent_version     TEXT,
    seen_at           REAL NOT NULL
);
