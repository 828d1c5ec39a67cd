// How times, durations, ids and numbers read on the page.

export function shortId(id) {
  return id ? id.slice(0, 8) : "";
}

export function when(unix) {
  if (!unix) return "";
  const d = new Date(unix * 1000);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

export function ago(unix) {
  if (!unix) return "";
  const s = Date.now() / 1000 - unix;
  if (s < 60) return `${Math.max(0, Math.round(s))}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60000);
  return `${m}m ${Math.round((ms % 60000) / 1000)}s`;
}

// From spawn to end (to now while live): what the one who spawned it waited.
export function runDuration(run) {
  if (!run.created_at) return "";
  const end = run.finished_at || Date.now() / 1000;
  return duration((end - run.created_at) * 1000);
}

export function num(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString();
}

export function pct(x) {
  return x === null || x === undefined ? "–" : `${(x * 100).toFixed(0)}%`;
}

export function cost(x) {
  return x === null || x === undefined ? "–" : Number(x).toPrecision(3);
}

export const LIVE = new Set(["queued", "running", "awaiting_permission"]);

// Tokens spent, in and out, as the workflow budgets count them.
export function tokens(usage) {
  if (!usage || (usage.input_tokens == null && usage.output_tokens == null)) return "–";
  return num((usage.input_tokens || 0) + (usage.output_tokens || 0));
}

// A workflow run is live while queued or running; its steps are subagent runs (LIVE above).
export const LIVE_WORKFLOW = new Set(["queued", "running"]);
