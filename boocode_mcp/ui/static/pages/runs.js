// Runs: the workspace's runs newest first, live, filtered by status, agent and session, a page at
// a time (the list_runs operation).
import { read } from "../lib/api.js";
import { badge, empty, failure, h, link, replace } from "../lib/dom.js";
import { ago, runDuration, shortId, when } from "../lib/fmt.js";
import { throttle, touches } from "../lib/live.js";
import { href } from "../lib/route.js";

const PAGE_SIZE = 50;
const FILTERS = ["status", "agent", "session_id"];

function filterSelect(ctx, name, label, choices) {
  const current = ctx.params.get(name) || "";
  const select = h(
    "select",
    {
      name,
      "aria-label": label,
      onchange: (e) => ctx.go({ ...filtersOf(ctx), [name]: e.target.value, before: null }),
    },
    h("option", { value: "" }, `all ${label}`),
    choices.map(([value, text]) => h("option", { value, selected: value === current }, text)),
  );
  if (current && !choices.some(([value]) => value === current)) {
    select.append(h("option", { value: current, selected: true }, current));
  }
  return h("label", { class: "filter" }, select);
}

function filtersOf(ctx) {
  return Object.fromEntries(FILTERS.map((f) => [f, ctx.params.get(f)]));
}

function activityLine(run) {
  const act = run.activity;
  if (!act) return null;
  const calls = act.tool_calls || [];
  const last = calls[calls.length - 1];
  const bits = [];
  if (last) bits.push(`${last.title}${last.status ? ` (${last.status})` : ""}`);
  if (act.recent_text) bits.push(act.recent_text.slice(-120));
  return bits.length ? h("div", { class: "activity" }, bits.join(" · ")) : null;
}

function row(ctx, run) {
  return h(
    "tr",
    { dataset: { run: run.subagent_id, status: run.status } },
    h("td", {}, badge(run.status), run.pending_permission ? h("span", { class: "flag" }, " asks permission") : null),
    h("td", { class: "mono" }, link(href("run", run.subagent_id), shortId(run.subagent_id), { title: run.subagent_id })),
    h("td", {}, link(href("runs", null, { ...filtersOf(ctx), agent: run.agent }), run.agent)),
    h("td", { class: "prompt" }, h("div", {}, run.prompt), activityLine(run), run.error ? h("div", { class: "error-line" }, run.error) : null),
    h(
      "td",
      { class: "mono" },
      link(href("runs", null, { ...filtersOf(ctx), session_id: run.session_id }), shortId(run.session_id), {
        title: `only session ${run.session_id}`,
      }),
    ),
    h("td", { title: when(run.created_at) }, ago(run.created_at)),
    h("td", {}, runDuration(run)),
    h("td", { class: "mono" }, run.patch_id ? link(href("patch", run.patch_id), shortId(run.patch_id)) : ""),
  );
}

export default {
  path: "runs",
  title: "Runs",
  nav: true,
  render(ctx) {
    const filters = h("div", { class: "filters" });
    const body = h("div", { class: "card" });
    const pager = h("div", { class: "pager" });
    replace(ctx.view, h("h1", {}, "Runs"), filters, body, pager);
    const before = ctx.params.get("before");

    async function load() {
      let page;
      try {
        page = await read("list_runs", { ...filtersOf(ctx), before, limit: PAGE_SIZE });
      } catch (e) {
        replace(body, failure(e));
        return;
      }
      const f = page.facets;
      replace(
        filters,
        filterSelect(ctx, "status", "statuses", Object.entries(f.statuses).map(([s, n]) => [s, `${s.replace("_", " ")} (${n})`])),
        filterSelect(ctx, "agent", "agents", Object.entries(f.agents).map(([a, n]) => [a, `${a} (${n})`])),
        filterSelect(
          ctx,
          "session_id",
          "sessions",
          f.sessions.map((s) => [s.session_id, `${shortId(s.session_id)} · ${when(s.created_at)}`]),
        ),
        FILTERS.some((k) => ctx.params.get(k)) ? link(href("runs"), "clear filters", { class: "clear" }) : null,
        h("span", { class: "count" }, `${page.total.toLocaleString()} runs`),
      );
      if (!page.runs.length) {
        replace(body, empty(page.total ? "no runs on this page" : "no runs match; start one with spawn_subagent or `boocode run`"));
      } else {
        replace(
          body,
          h(
            "table",
            { class: "runs" },
            h("thead", {}, h("tr", {}, ["status", "run", "agent", "prompt", "session", "created", "took", "patch"].map((t) => h("th", {}, t)))),
            h("tbody", {}, page.runs.map((r) => row(ctx, r))),
          ),
        );
      }
      replace(
        pager,
        before ? link(href("runs", null, filtersOf(ctx)), "← newest") : null,
        page.next_before ? link(href("runs", null, { ...filtersOf(ctx), before: page.next_before }), "older →", { class: "older" }) : null,
      );
    }

    const refresh = throttle(load, 400);
    ctx.stream({ onOpen: refresh, onChange: (uris) => touches(uris, "subagents://") && refresh() });
  },
};
