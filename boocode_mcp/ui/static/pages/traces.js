// Traces: every MCP tool call and every agent tool call, newest first, with latency bars, live;
// filtered by session, expandable to input and output.
import { read } from "../lib/api.js";
import { empty, failure, h, link, replace } from "../lib/dom.js";
import { duration, shortId, when } from "../lib/fmt.js";
import { throttle, touches } from "../lib/live.js";
import { href } from "../lib/route.js";

function detail(t) {
  return h(
    "tr",
    { class: "trace-detail" },
    h(
      "td",
      { colspan: 7 },
      h("div", { class: "kv" }, h("strong", {}, "input"), h("pre", {}, t.input === null ? "–" : JSON.stringify(t.input, null, 2))),
      h("div", { class: "kv" }, h("strong", {}, "output"), h("pre", {}, t.output_excerpt || "–")),
      t.error ? h("p", { class: "failure" }, t.error) : null,
    ),
  );
}

export default {
  path: "traces",
  title: "Traces",
  nav: true,
  render(ctx) {
    const session = ctx.params.get("session_id");
    const filter = h("div", { class: "filters" });
    const body = h("div", { class: "card" });
    replace(ctx.view, h("h1", {}, "Traces"), filter, body);

    async function load() {
      let out;
      try {
        out = await read("traces", { session_id: session });
      } catch (e) {
        replace(body, failure(e));
        return;
      }
      const traces = out.traces;
      const sessions = [...new Set(traces.map((t) => t.session_id).filter(Boolean))];
      replace(
        filter,
        h(
          "label",
          { class: "filter" },
          h(
            "select",
            { "aria-label": "session", onchange: (e) => ctx.go({ session_id: e.target.value }) },
            h("option", { value: "" }, "all sessions"),
            (session && !sessions.includes(session) ? [session, ...sessions] : sessions).map((s) => h("option", { value: s, selected: s === session }, shortId(s))),
          ),
        ),
        h("span", { class: "count" }, `${traces.length} tool calls`),
      );
      if (!traces.length) {
        replace(body, empty("no traced tool calls yet"));
        return;
      }
      const longest = Math.max(...traces.map((t) => t.latency_ms || 0), 1);
      const rows = [];
      for (const t of [...traces].reverse()) {
        const open = { shown: false, row: null };
        const tr = h(
          "tr",
          {
            class: `trace o-${t.outcome}`,
            dataset: { trace: t.id },
            onclick: () => {
              open.shown = !open.shown;
              if (open.shown) tr.after((open.row = detail(t)));
              else open.row?.remove();
            },
          },
          h("td", { title: when(t.started_at) }, new Date(t.started_at * 1000).toLocaleTimeString()),
          h("td", {}, h("span", { class: `source src-${t.source}` }, t.source)),
          h("td", {}, t.tool_name),
          h("td", { class: "mono" }, t.subagent_id ? link(href("run", t.subagent_id), shortId(t.subagent_id), { onclick: (e) => e.stopPropagation() }) : ""),
          h("td", {}, t.outcome || ""),
          h(
            "td",
            { class: "latency" },
            h("div", { class: "lat-bar", style: { width: `${((t.latency_ms || 0) / longest) * 100}%` } }),
            h("span", {}, t.latency_ms === null ? "" : duration(t.latency_ms)),
          ),
          h("td", { class: "mono" }, t.session_id ? shortId(t.session_id) : ""),
        );
        rows.push(tr);
      }
      replace(
        body,
        h(
          "table",
          { class: "traces" },
          h("thead", {}, h("tr", {}, ["started", "source", "tool", "run", "outcome", "latency", "session"].map((x) => h("th", {}, x)))),
          h("tbody", {}, rows),
        ),
      );
    }

    const refresh = throttle(load, 1000);
    ctx.stream({ onOpen: refresh, onChange: (uris) => touches(uris, "traces://") && refresh() });
  },
};
