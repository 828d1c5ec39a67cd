// A run: its status, a pending permission with answer buttons, plan, tool calls as a latency
// waterfall, final message and the timeline of its events, all live. Events arrive on the run's
// stream (the watch operation's answers) as the engine writes them.
import { act } from "../lib/api.js";
import { badge, empty, failure, h, link, replace, section } from "../lib/dom.js";
import { LIVE, cost, duration, num, runDuration, shortId, when } from "../lib/fmt.js";
import { href } from "../lib/route.js";

const TEXT_KINDS = new Set(["text", "reasoning"]);

function describe(entry) {
  const p = entry.payload;
  switch (entry.kind) {
    case "text":
      return entry.text;
    case "reasoning":
      return `thinking: ${entry.text}`;
    case "tool_call":
      return `${p.title || "tool call"}${p.status ? ` (${p.status})` : ""}${p.locations?.length ? ` · ${p.locations.map(entry.where).join(", ")}` : ""}`;
    case "tool_update":
      return `${p.title || entry.callTitle || p.tool_call_id}: ${p.status || "update"}${p.content_text ? ` · ${p.content_text}` : ""}`;
    case "plan":
      return (p.entries || []).map((e) => `${e.status === "completed" ? "✓" : e.status === "in_progress" ? "▸" : "·"} ${e.content}`).join("  ");
    case "usage":
      return `usage: ${num(p.input_tokens)} in / ${num(p.output_tokens)} out${p.cost !== null && p.cost !== undefined ? ` · cost ${cost(p.cost)}` : ""}`;
    case "permission_request":
      return `asks permission: ${p.title}`;
    case "session":
      return `agent session: ${p.origin}${p.note ? ` · ${p.note}` : ""}`;
    case "mode_change":
      return `mode: ${p.mode_id}`;
    case "available_commands":
      return `commands: ${(p.commands || []).join(", ")}`;
    default:
      return p.update_type || entry.kind;
  }
}

// Each tool call's span: from its tool_call event to the update that completed or failed it.
function toolSpans(events) {
  const spans = new Map();
  for (const ev of events) {
    const p = ev.payload;
    if (ev.kind !== "tool_call" && ev.kind !== "tool_update") continue;
    let span = spans.get(p.tool_call_id);
    if (!span) {
      span = { id: p.tool_call_id, title: p.title || p.tool_call_id, start: ev.created_at, end: null, status: p.status || "pending", kind: p.tool_kind };
      spans.set(p.tool_call_id, span);
    }
    if (p.title) span.title = p.title;
    if (p.status) span.status = p.status;
    if (p.status === "completed" || p.status === "failed") span.end = ev.created_at;
  }
  return [...spans.values()];
}

function label(span) {
  return span.end ? duration((span.end - span.start) * 1000) : span.status.replace("_", " ");
}

function waterfall(status, events) {
  const spans = toolSpans(events);
  if (!spans.length) return empty("no tool calls");
  const live = LIVE.has(status.status);
  const now = Date.now() / 1000;
  const t0 = Math.min(status.created_at || spans[0].start, spans[0].start);
  const lastEvent = events.length ? events[events.length - 1].created_at : t0;
  const t1 = Math.max(live ? now : status.finished_at || lastEvent, lastEvent, ...spans.map((s) => s.end || 0)) || t0 + 1;
  const total = Math.max(t1 - t0, 0.001);
  const scale = h(
    "div",
    { class: "wf-scale" },
    [0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { style: { left: `${f * 100}%` } }, duration(f * total * 1000))),
  );
  return h(
    "div",
    { class: "waterfall" },
    h("div", { class: "wf-row wf-head" }, h("div", { class: "wf-label" }, "tool call"), h("div", { class: "wf-track" }, scale)),
    spans.map((s) => {
      const end = s.end ?? (live ? now : t1);
      const left = ((s.start - t0) / total) * 100;
      const width = Math.max(((end - s.start) / total) * 100, 0.4);
      return h(
        "div",
        { class: "wf-row", dataset: { toolCall: s.id } },
        h("div", { class: "wf-label", title: s.title }, s.title),
        h(
          "div",
          { class: "wf-track" },
          h("div", { class: `wf-bar t-${s.status}`, style: { left: `${left}%`, width: `${width}%` }, title: `${s.status}` }),
          // The time goes after its bar, or before it when the bar reaches the right edge.
          left + width > 80
            ? h("span", { class: "wf-time before", style: { right: `${100 - left}%` } }, label(s))
            : h("span", { class: "wf-time", style: { left: `${left + width}%` } }, label(s)),
        ),
      );
    }),
  );
}

function plan(status) {
  const entries = status.activity?.plan || [];
  if (!entries.length) return empty("no plan");
  return h(
    "ol",
    { class: "plan" },
    entries.map((e) => h("li", { class: `p-${e.status}` }, h("span", { class: "plan-mark" }, e.status === "completed" ? "✓" : e.status === "in_progress" ? "▸" : "○"), e.content)),
  );
}

// The timeline grows as events arrive: consecutive text (or reasoning) chunks read as one
// message, so a new chunk extends the last entry instead of adding one.
class Timeline {
  constructor() {
    this.list = h("ol", { class: "timeline" });
    this.last = null;
    this.t0 = null;
    // A tool call's title, for its later updates (which seldom repeat it).
    this.titles = new Map();
  }

  // `worktree`: the run's chat worktree, whose paths read better relative to it.
  add(events, t0, worktree) {
    this.t0 ??= t0;
    const prefix = worktree ? `${worktree}/` : null;
    const where = (path) => (prefix && path.startsWith(prefix) ? path.slice(prefix.length) : path);
    for (const ev of events) {
      const last = this.last;
      if (TEXT_KINDS.has(ev.kind) && last && last.kind === ev.kind) {
        last.text += ev.payload.text || "";
        last.textEl.textContent = describe(last);
        continue;
      }
      if (ev.kind === "tool_call" && ev.payload.title) this.titles.set(ev.payload.tool_call_id, ev.payload.title);
      const entry = { kind: ev.kind, payload: ev.payload, text: ev.payload.text || "", callTitle: this.titles.get(ev.payload.tool_call_id), where };
      entry.textEl = h("span", { class: "ev-text" }, describe(entry));
      this.list.append(
        h(
          "li",
          { class: `ev k-${ev.kind}`, dataset: { kind: ev.kind, seq: ev.seq } },
          h("span", { class: "ev-time", title: when(ev.created_at) }, `+${duration(Math.max(0, ev.created_at - this.t0) * 1000)}`),
          h("span", { class: "ev-kind" }, ev.kind.replace("_", " ")),
          entry.textEl,
        ),
      );
      this.last = entry;
    }
  }
}

export default {
  path: "run",
  title: "Run",
  navAs: "runs",
  render(ctx) {
    const id = ctx.arg;
    const head = h("div", { class: "card run-head" });
    const permission = h("div", { class: "permission-slot" });
    const planBox = h("div");
    const wf = h("div");
    const message = h("div");
    const tl = h("div");
    const note = h("div", { class: "action-result" });
    replace(
      ctx.view,
      h("h1", {}, "Run ", h("span", { class: "mono" }, shortId(id))),
      head,
      note,
      permission,
      h("div", { class: "two" }, section("Plan", planBox), section("Tool calls", wf)),
      section("Final message", message),
      section("Timeline", tl),
    );
    let status = null;
    const events = [];
    const timeline = new Timeline();
    replace(tl, empty("no events yet"));

    async function answer(request, option) {
      for (const b of permission.querySelectorAll("button")) b.disabled = true;
      try {
        const out = await act("respond_permission", { subagent_id: id, request_id: request.request_id, option_id: option.option_id });
        replace(note, h("p", { class: "ok" }, `answered “${option.name}”: the run is ${out.status.replace("_", " ")}`));
      } catch (e) {
        replace(note, failure(e));
        for (const b of permission.querySelectorAll("button")) b.disabled = false;
      }
    }

    async function cancel() {
      try {
        const out = await act("cancel_subagent", { subagent_id: id });
        replace(note, h("p", { class: "ok" }, `cancel asked: the run is ${out.status}`));
      } catch (e) {
        replace(note, failure(e));
      }
    }

    function drawHead() {
      const s = status;
      const u = s.usage;
      replace(
        head,
        h(
          "div",
          { class: "head-line" },
          badge(s.status),
          h("strong", {}, s.agent),
          LIVE.has(s.status) ? h("button", { class: "secondary", onclick: cancel }, "Cancel") : null,
        ),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "run"), h("dd", { class: "mono" }, s.subagent_id),
          h("dt", {}, "chat"), h("dd", { class: "mono" }, s.chat_id),
          h("dt", {}, "session"), h("dd", { class: "mono" }, link(href("runs", null, { session_id: s.session_id }), s.session_id)),
          h("dt", {}, "created"), h("dd", {}, when(s.created_at)),
          h("dt", {}, "took"), h("dd", {}, runDuration(s) || "–"),
          h("dt", {}, "usage"), h("dd", {}, u ? `${num(u.input_tokens)} in / ${num(u.output_tokens)} out · cost ${cost(u.cost)}` : "–"),
          h("dt", {}, "patch"), h("dd", { class: "mono" }, s.patch_id ? link(href("patch", s.patch_id), s.patch_id) : "–"),
          s.stop_reason ? [h("dt", {}, "stop reason"), h("dd", {}, s.stop_reason)] : null,
        ),
        h("pre", { class: "prompt-text" }, s.prompt || ""),
        s.error ? h("p", { class: "failure" }, s.error) : null,
        s.session_note ? h("p", { class: "note" }, s.session_note) : null,
      );
    }

    function drawPermission() {
      const p = status.pending_permission;
      if (!p) {
        permission.replaceChildren();
        return;
      }
      replace(
        permission,
        h(
          "section",
          { class: "card permission", role: "alert" },
          h("h2", {}, "The agent asks permission"),
          h("p", {}, p.title),
          h(
            "div",
            { class: "buttons" },
            p.options.map((o) =>
              h("button", { class: `perm k-${o.kind}`, dataset: { option: o.option_id, kind: o.kind }, onclick: () => answer(p, o) }, o.name),
            ),
          ),
          h("p", { class: "note" }, `unanswered, it fails closed at ${when(p.deadline)}`),
        ),
      );
    }

    function draw() {
      drawHead();
      drawPermission();
      replace(planBox, plan(status));
      replace(wf, waterfall(status, events));
      const text = status.final_message || status.activity?.recent_text || "";
      replace(message, text ? h("pre", { class: "message" }, text) : empty(LIVE.has(status.status) ? "the agent has not said anything yet" : "no message"));
    }

    ctx.stream({
      run: id,
      onRun: (batch) => {
        events.push(...batch.events);
        status = batch.status;
        draw();
        if (batch.events.length) {
          if (!timeline.last) replace(tl, timeline.list);
          timeline.add(batch.events, status.created_at, status.worktree);
        }
        // For whoever watches the page (the benchmark measures event latency with it).
        window.dispatchEvent(new CustomEvent("boocode:run-events", { detail: { events: batch.events, status: status.status } }));
      },
      onFailure: (e) => replace(head, failure(e)),
    });
    // Open tool calls grow while the run is live.
    const ticker = setInterval(() => status && LIVE.has(status.status) && replace(wf, waterfall(status, events)), 1000);
    return () => clearInterval(ticker);
  },
};
