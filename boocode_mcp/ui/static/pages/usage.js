// Usage: runs, outcomes, tokens, cost and cache hit rate by agent and by day (the usage_stats
// operation), as charts (uPlot, vendored) and tables. The cache hit rate is cache reads over all
// input tokens (cache reads + fresh input); it shows once agents report cache tokens.
import { read } from "../lib/api.js";
import { empty, failure, h, link, replace, section } from "../lib/dom.js";
import { cost, duration, num, pct } from "../lib/fmt.js";
import { throttle, touches } from "../lib/live.js";
import { href } from "../lib/route.js";

const RANGES = [
  ["24h", "last 24 hours"],
  ["7d", "last 7 days"],
  ["30d", "last 30 days"],
  ["", "all time"],
];
const COLORS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6"];
const CHART_HEIGHT = 220;

function hitRate(row) {
  if (row.cache_read_tokens === null || row.cache_read_tokens === undefined) return null;
  const all = (row.input_tokens || 0) + row.cache_read_tokens;
  return all ? row.cache_read_tokens / all : null;
}

function width(el) {
  return Math.max(320, (el.clientWidth || 640) - 8);
}

// A chart over categories (agents, days): x is the category's index, labelled with its name.
// Counts are stacked bars — `layers` bottom first, each drawn as the sum of itself and the
// layers below, tallest first, so each shows as its own band (uPlot's way of stacking); rates are
// lines on a 0–100% scale, a category without a value left as a gap.
function chart(el, title, names, layers, { rate = false } = {}) {
  let series = layers;
  if (!rate) {
    let below = names.map(() => 0);
    series = layers.map((layer) => {
      below = below.map((v, i) => v + (layer.values[i] ?? 0));
      return { ...layer, values: below };
    });
    series.reverse();
  }
  const opts = {
    title,
    width: width(el),
    height: CHART_HEIGHT,
    scales: {
      x: { time: false, range: [-0.5, names.length - 0.5] },
      y: { range: rate ? [0, 1] : (u, min, max) => [0, Math.max(1, max * 1.1)] },
    },
    axes: [
      { splits: () => names.map((_, i) => i), values: (u, splits) => splits.map((i) => names[i] ?? "") },
      { values: (u, splits) => splits.map((v) => (rate ? pct(v) : num(v))) },
    ],
    series: [
      {},
      ...series.map((s) =>
        rate
          ? { label: s.label, stroke: s.color, width: 2, points: { size: 7, fill: s.color } }
          : { label: s.label, fill: s.color, stroke: s.color, paths: window.uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } },
      ),
    ],
    legend: { live: false },
  };
  return new window.uPlot(opts, [names.map((_, i) => i), ...series.map((s) => s.values)], el);
}

function table(rows, keyLabel, keyCell) {
  return h(
    "table",
    { class: "usage" },
    h(
      "thead",
      {},
      h("tr", {}, [keyLabel, "runs", "completed", "failed", "success", "median turn", "tokens in", "tokens out", "cache reads", "cache hit rate", "cost"].map((t) => h("th", {}, t))),
    ),
    h(
      "tbody",
      {},
      rows.map((r) =>
        h(
          "tr",
          { dataset: { key: r.key } },
          h("td", {}, keyCell(r.key)),
          h("td", {}, num(r.runs)),
          h("td", {}, num(r.completed)),
          h("td", {}, num(r.failed)),
          h("td", {}, pct(r.success_rate)),
          h("td", {}, r.median_turn_ms === null ? "–" : duration(r.median_turn_ms)),
          h("td", {}, num(r.input_tokens)),
          h("td", {}, num(r.output_tokens)),
          h("td", {}, num(r.cache_read_tokens)),
          h("td", {}, pct(hitRate(r))),
          h("td", {}, cost(r.cost)),
        ),
      ),
    ),
  );
}

export default {
  path: "usage",
  title: "Usage",
  nav: true,
  render(ctx) {
    const since = ctx.params.has("since") ? ctx.params.get("since") : "30d";
    const ranges = h(
      "div",
      { class: "tabs" },
      RANGES.map(([value, label]) => link(href("usage", null, { since: value || "all" }), label, { class: value === (since === "all" ? "" : since) ? "active" : "" })),
    );
    const byAgent = h("div");
    const byDay = h("div");
    replace(ctx.view, h("h1", {}, "Usage"), ranges, section("By agent", byAgent), section("By day", byDay));
    const charts = [];

    async function load() {
      let agents;
      let days;
      const arg = since === "all" ? null : since;
      try {
        [agents, days] = await Promise.all([read("usage_stats", { group_by: "agent", since: arg }), read("usage_stats", { group_by: "day", since: arg })]);
      } catch (e) {
        replace(byAgent, failure(e));
        return;
      }
      for (const c of charts.splice(0)) c.destroy();
      if (!agents.rows.length) {
        replace(byAgent, empty("no runs in this range"));
        replace(byDay, empty("no runs in this range"));
        return;
      }
      const names = agents.rows.map((r) => r.key);
      const tokensChart = h("div", { class: "chart", dataset: { chart: "agent-tokens" } });
      const runsChart = h("div", { class: "chart", dataset: { chart: "agent-runs" } });
      const agentCache = h("div", { class: "chart", dataset: { chart: "agent-cache" } });
      const hasCache = agents.rows.some((r) => hitRate(r) !== null);
      replace(
        byAgent,
        h("div", { class: "charts" }, tokensChart, runsChart, hasCache ? agentCache : null),
        hasCache ? null : h("p", { class: "note" }, "Cache hit rate: no agent has reported cache tokens in this range."),
        table(agents.rows, "agent", (key) => link(href("runs", null, { agent: key }), key)),
      );
      charts.push(
        chart(tokensChart, "Tokens", names, [
          { label: "input", color: COLORS[0], values: agents.rows.map((r) => r.input_tokens ?? 0) },
          { label: "output", color: COLORS[1], values: agents.rows.map((r) => r.output_tokens ?? 0) },
        ]),
        chart(runsChart, "Runs", names, [
          { label: "completed", color: COLORS[2], values: agents.rows.map((r) => r.completed) },
          { label: "failed", color: COLORS[3], values: agents.rows.map((r) => r.failed) },
          { label: "other", color: "#9ca3af", values: agents.rows.map((r) => r.runs - r.completed - r.failed) },
        ]),
      );
      if (hasCache) {
        charts.push(chart(agentCache, "Cache hit rate", names, [{ label: "cache hits", color: COLORS[4], values: agents.rows.map(hitRate) }], { rate: true }));
      }
      const dayNames = days.rows.map((r) => r.key);
      const dayTokens = h("div", { class: "chart", dataset: { chart: "day-tokens" } });
      const dayRuns = h("div", { class: "chart", dataset: { chart: "day-success" } });
      const dayCache = h("div", { class: "chart", dataset: { chart: "day-cache" } });
      const dayHasCache = days.rows.some((r) => hitRate(r) !== null);
      replace(
        byDay,
        h("div", { class: "charts" }, dayTokens, dayRuns, dayHasCache ? dayCache : null),
        dayHasCache ? null : h("p", { class: "note" }, "Cache hit rate by day: no agent has reported cache tokens in this range."),
        table(days.rows, "day", (key) => key),
      );
      charts.push(
        chart(dayTokens, "Tokens per day", dayNames, [
          { label: "input", color: COLORS[0], values: days.rows.map((r) => r.input_tokens ?? 0) },
          { label: "output", color: COLORS[1], values: days.rows.map((r) => r.output_tokens ?? 0) },
        ]),
        chart(dayRuns, "Success rate per day", dayNames, [{ label: "success", color: COLORS[2], values: days.rows.map((r) => r.success_rate) }], {
          rate: true,
        }),
      );
      if (dayHasCache) {
        charts.push(chart(dayCache, "Cache hit rate per day", dayNames, [{ label: "cache hits", color: COLORS[4], values: days.rows.map(hitRate) }], { rate: true }));
      }
    }

    const refresh = throttle(load, 2000);
    ctx.stream({ onOpen: refresh, onChange: (uris) => touches(uris, "subagents://") && refresh() });
    return () => charts.forEach((c) => c.destroy());
  },
};
