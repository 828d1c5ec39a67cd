// The page's shell: a hash router over the pages below. A page is a module exporting
// {path, title, nav?, render(ctx)}; render fills ctx.view and may return a function that stops
// what it started (its live stream, its timers). To add a page, write pages/<name>.js and list
// it in PAGES.
import { h, replace } from "./lib/dom.js";
import { openStream } from "./lib/live.js";
import { href, parse } from "./lib/route.js";
import runs from "./pages/runs.js";
import run from "./pages/run.js";
import patches from "./pages/patches.js";
import patch from "./pages/patch.js";
import traces from "./pages/traces.js";
import usage from "./pages/usage.js";
import inbox from "./pages/inbox.js";
import workflows from "./pages/workflows.js";
import workflow from "./pages/workflow.js";

const PAGES = [runs, run, workflows, workflow, inbox, patches, patch, traces, usage];
const DEFAULT = "runs";

let stop = null;

function show() {
  if (stop) {
    stop();
    stop = null;
  }
  const route = parse(location.hash);
  const path = route.path || DEFAULT;
  const { arg, params } = route;
  const page = PAGES.find((p) => p.path === path);
  const view = document.getElementById("view");
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.path === (page?.navAs || path));
  if (!page) {
    replace(view, h("p", { class: "failure" }, `no page ${path}`));
    return;
  }
  document.title = `${page.title} · BooCode`;
  view.replaceChildren();
  view.dataset.page = page.path;
  const stops = [];
  const ctx = {
    view,
    arg,
    params,
    // Move to the same page with other parameters (a filter, the next page of a listing).
    go: (next) => (location.hash = href(path, arg, next)),
    stream: (options) => {
      const close = openStream(options);
      stops.push(close);
      return close;
    },
  };
  const cleanup = page.render(ctx);
  stop = () => {
    for (const s of stops) s();
    if (typeof cleanup === "function") cleanup();
  };
}

function nav() {
  replace(
    document.getElementById("nav"),
    PAGES.filter((p) => p.nav).map((p) => h("a", { href: href(p.path), dataset: { path: p.path } }, p.title)),
  );
}

nav();
window.addEventListener("hashchange", show);
show();
