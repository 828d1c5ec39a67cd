-- Listing runs newest first, for the whole workspace or filtered by status or agent (the web
-- page's runs page): each is served by an index in created_at order, so a page of 50 runs out of
-- 10,000 reads about 50 index entries instead of sorting the table. The id breaks ties between runs
-- created at the same instant (the page cursor is (created_at, id)).
CREATE INDEX subagents_created ON subagents(created_at, id);
CREATE INDEX subagents_status_created ON subagents(status, created_at, id);
CREATE INDEX subagents_agent_created ON subagents(agent, created_at, id);
-- (status) is a prefix of (status, created_at): the new index serves every query the old one did.
DROP INDEX subagents_status;
