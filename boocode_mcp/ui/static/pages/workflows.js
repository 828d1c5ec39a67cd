// Workflow runs: the newest first, live (the list_workflow_runs operation): each run's status, its
// steps done of those started (and how many came from the step cache), what it spent.
import { read } from "../lib/api.js";
import { badge, empty, failure, h, link, replace } from "../lib/dom.js";
import { ago, runDuration, shortId, tokens, when } from "../lib/fmt.js";
import { throttle, touches } from "../lib/live.js";
import { href } from "../lib/route.js";

const PAGE_SIZE = 100;

function row(run) {
  return h(
    "tr",
    { dataset: { workflowRun: run.workflow_run_id, status: run.status } },
    h("td", {}, badge(run.status)),
    h("td", { class: "mono" }, link(href("workflow", run.workflow_run_id), shortId(run.workflow_run_id), { title: run.workflow_run_id })),
    h("td", {}, h("strong", {}, run.name), run.error ? h("div", { class: "error-line" }, run.error) : null),
    h("td", { title: when(run.created_at) }, ago(run.created_at)),
    h("td", {}, runDuration(run)),
    h(
      "td",
      { class: "steps" },
      h("span", { class: "done" }, `${run.steps_done}/${run.steps_total}`),
      run.steps_cached ? h("span", { class: "cached", title: "steps taken from the step cache" }, `${run.steps_cached} cached`) : null,
    ),
    h("td", { class: "num" }, tokens(run.usage)),
  );
}

export default {
  path: "workflows",
  title: "Workflows",
  nav: true,
  render(ctx) {
    const count = h("p", { class: "note" });
    const body = h("div", { class: "card" });
    replace(ctx.view, h("h1", {}, "Workflow runs"), count, body);

    async function load() {
      let page;
      try {
        page = await read("list_workflow_runs", { limit: PAGE_SIZE });
      } catch (e) {
        replace(body, failure(e));
        return;
      }
      replace(count, page.total > page.runs.length ? `the newest ${page.runs.length} of ${page.total.toLocaleString()} runs` : "");
      if (!page.runs.length) {
        replace(body, empty("no workflow runs; start one with run_workflow or `boocode workflow run`"));
        return;
      }
      replace(
        body,
        h(
          "table",
          { class: "workflow-runs" },
          h("thead", {}, h("tr", {}, ["status", "run", "workflow", "started", "took", "steps done", "tokens"].map((t) => h("th", {}, t)))),
          h("tbody", {}, page.runs.map(row)),
        ),
      );
    }

    const refresh = throttle(load, 400);
    // A step's status is its subagent run's: a run announces its own steps' changes as its own.
    ctx.stream({ onOpen: refresh, onChange: (uris) => touches(uris, "workflows://") && refresh() });
  },
};
