// A workflow run: its status and args, its steps in the order they started (each a subagent run,
// or a result from the step cache, marked "cached"), what its script logged, and its result or
// error, live; a live run can be cancelled (with its running steps).
import { act, read } from "../lib/api.js";
import { badge, empty, failure, h, link, replace, section } from "../lib/dom.js";
import { LIVE_WORKFLOW, runDuration, shortId, tokens, when } from "../lib/fmt.js";
import { throttle } from "../lib/live.js";
import { href } from "../lib/route.js";

function stepRow(step) {
  return h(
    "tr",
    { dataset: { step: step.step_id, status: step.status, cached: step.cached ? "true" : "false" } },
    h("td", { class: "mono" }, step.step_id),
    h("td", {}, step.phase || ""),
    h("td", {}, step.agent),
    h("td", {}, badge(step.status), step.cached ? h("span", { class: "cached", title: "taken from the step cache: no agent ran" }, "cached") : null),
    h(
      "td",
      { class: "mono" },
      step.subagent_id
        ? link(href("run", step.subagent_id), shortId(step.subagent_id), {
            title: step.cached ? `the run that made the cached result: ${step.subagent_id}` : step.subagent_id,
          })
        : "–",
    ),
    h("td", { class: "mono" }, step.patch_id ? link(href("patch", step.patch_id), shortId(step.patch_id)) : ""),
    h("td", { class: "num" }, step.cached ? "0" : tokens(step.usage)),
    h("td", { class: "notes" }, step.error ? h("span", { class: "error-line" }, step.error) : ""),
  );
}

export default {
  path: "workflow",
  title: "Workflow run",
  navAs: "workflows",
  render(ctx) {
    const id = ctx.arg;
    const head = h("div", { class: "card" });
    const note = h("div", { class: "action-result" });
    const steps = h("div");
    const logs = h("div");
    const outcome = h("div");
    replace(
      ctx.view,
      h("h1", {}, "Workflow run ", h("span", { class: "mono" }, shortId(id))),
      head,
      note,
      section("Steps", steps),
      section("Log", logs),
      section("Result", outcome),
    );
    let subagents = new Set();

    async function cancel(button) {
      button.disabled = true;
      try {
        const out = await act("cancel_workflow", { workflow_run_id: id });
        replace(note, h("p", { class: "ok" }, `cancelled: the run is ${out.status}`));
      } catch (e) {
        button.disabled = false;
        replace(note, failure(e));
      }
      refresh();
    }

    async function load() {
      let run;
      try {
        run = await read("workflow_status", { workflow_run_id: id });
      } catch (e) {
        replace(head, failure(e));
        return;
      }
      subagents = new Set(run.steps.map((s) => s.subagent_id).filter(Boolean));
      const cached = run.steps.filter((s) => s.cached).length;
      const cancelButton = LIVE_WORKFLOW.has(run.status) ? h("button", { class: "danger", onclick: () => cancel(cancelButton) }, "Cancel") : null;
      replace(
        head,
        h("div", { class: "head-line run-head" }, badge(run.status), h("strong", {}, run.name), cancelButton),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "run"), h("dd", { class: "mono" }, run.workflow_run_id),
          h("dt", {}, "session"), h("dd", { class: "mono" }, link(href("runs", null, { session_id: run.session_id }), run.session_id)),
          h("dt", {}, "source"), h("dd", {}, run.source),
          h("dt", {}, "created"), h("dd", {}, when(run.created_at)),
          h("dt", {}, "took"), h("dd", {}, runDuration(run) || "–"),
          h("dt", {}, "tokens"), h("dd", {}, tokens(run.usage)),
          h("dt", {}, "steps"), h("dd", {}, `${run.steps.length} (${cached} cached)`),
        ),
        h("pre", { class: "prompt-text" }, JSON.stringify(run.args, null, 2)),
      );
      replace(
        steps,
        run.steps.length
          ? h(
              "table",
              { class: "workflow-steps" },
              h("thead", {}, h("tr", {}, ["step", "phase", "agent", "status", "subagent", "patch", "tokens", "error"].map((t) => h("th", {}, t)))),
              h("tbody", {}, run.steps.map(stepRow)),
            )
          : empty(LIVE_WORKFLOW.has(run.status) ? "no step started yet" : "the run started no steps"),
      );
      replace(
        logs,
        run.logs.length
          ? h(
              "ol",
              { class: "timeline workflow-log" },
              run.logs.map((l) => h("li", {}, h("span", { class: "ev-time" }, new Date(l.at * 1000).toLocaleTimeString()), h("span", { class: "ev-kind" }, l.phase || ""), h("span", { class: "ev-text" }, l.message))),
            )
          : empty("nothing logged"),
      );
      replace(
        outcome,
        run.error ? h("p", { class: "failure workflow-run-error" }, run.error) : null,
        run.result !== null && run.result !== undefined
          ? h("pre", { class: "message workflow-result" }, JSON.stringify(run.result, null, 2))
          : run.error
            ? null
            : empty(LIVE_WORKFLOW.has(run.status) ? "not finished yet" : "no result"),
      );
    }

    // A step's run announces each of its events (subagents://ID): a few reads a second at most.
    const refresh = throttle(load, 400);
    ctx.stream({
      onOpen: refresh,
      onChange: (uris) => uris.some((u) => u === `workflows://${id}` || (u.startsWith("subagents://") && subagents.has(u.slice(12)))) && refresh(),
    });
  },
};
