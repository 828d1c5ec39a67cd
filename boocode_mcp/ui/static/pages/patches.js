// Patches: newest first by status (pending by default), live; pick pending ones and apply them
// together, all or nothing, or check that they would apply (dry run).
import { act, read } from "../lib/api.js";
import { badge, empty, failure, h, link, replace } from "../lib/dom.js";
import { ago, shortId, when } from "../lib/fmt.js";
import { applyResult } from "../lib/diff.js";
import { throttle, touches } from "../lib/live.js";
import { href } from "../lib/route.js";

const STATUSES = ["pending", "applied", "superseded", "discarded", "conflicted", "all"];

export default {
  path: "patches",
  title: "Patches",
  nav: true,
  render(ctx) {
    const status = ctx.params.get("status") || "pending";
    const tabs = h(
      "div",
      { class: "tabs" },
      STATUSES.map((s) => link(href("patches", null, { status: s === "pending" ? null : s }), s, { class: s === status ? "active" : "" })),
    );
    const body = h("div", { class: "card" });
    const result = h("div", { class: "action-result" });
    const selected = new Set();
    const applyButton = h("button", { disabled: true, onclick: () => apply(false) }, "Apply selected (all or nothing)");
    const checkButton = h("button", { class: "secondary", disabled: true, onclick: () => apply(true) }, "Check selected");
    const actions = status === "pending" ? h("div", { class: "buttons" }, applyButton, checkButton) : null;
    replace(ctx.view, h("h1", {}, "Patches"), tabs, actions, result, body);

    function syncButtons() {
      applyButton.disabled = checkButton.disabled = selected.size === 0;
    }

    async function apply(dryRun) {
      applyButton.disabled = checkButton.disabled = true;
      try {
        const out = await act("apply_pending", { patch_ids: [...selected], dry_run: dryRun });
        replace(result, applyResult(out));
        // Applied: they are no longer pending. Refused: the same selection can be tried again.
        if (out.applied.length && !out.dry_run) selected.clear();
      } catch (e) {
        replace(result, failure(e));
      }
      syncButtons();
      refresh();
    }

    async function load() {
      let list;
      try {
        list = await read("list_patches", { status: status === "all" ? null : status, limit: 200 });
      } catch (e) {
        replace(body, failure(e));
        return;
      }
      const ids = new Set(list.patches.map((p) => p.id));
      for (const id of [...selected]) if (!ids.has(id)) selected.delete(id);
      syncButtons();
      if (!list.patches.length) {
        replace(body, empty(`no ${status === "all" ? "" : `${status} `}patches`));
        return;
      }
      replace(
        body,
        h(
          "table",
          { class: "patches" },
          h("thead", {}, h("tr", {}, ["", "patch", "status", "agent", "run", "files", "+/−", "created", "notes"].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            list.patches.map((p) =>
              h(
                "tr",
                { dataset: { patch: p.id } },
                h(
                  "td",
                  {},
                  p.status === "pending"
                    ? h("input", {
                        type: "checkbox",
                        "aria-label": `select patch ${shortId(p.id)}`,
                        checked: selected.has(p.id),
                        onchange: (e) => {
                          e.target.checked ? selected.add(p.id) : selected.delete(p.id);
                          syncButtons();
                        },
                      })
                    : null,
                ),
                h("td", { class: "mono" }, link(href("patch", p.id), shortId(p.id), { title: p.id })),
                h("td", {}, badge(p.status)),
                h("td", {}, p.agent),
                h("td", { class: "mono" }, p.subagent_id ? link(href("run", p.subagent_id), shortId(p.subagent_id)) : ""),
                h("td", { class: "files" }, p.files.map((f) => f.path).join(", ")),
                h("td", {}, h("span", { class: "adds" }, `+${p.additions}`), " ", h("span", { class: "dels" }, `−${p.deletions}`)),
                h("td", { title: when(p.created_at) }, ago(p.created_at)),
                h(
                  "td",
                  { class: "notes" },
                  p.failed_mid_turn ? h("div", {}, "turn did not finish") : null,
                  p.collisions.length ? h("div", { class: "flag" }, `overlaps ${p.collisions.map((c) => `${c.file} (${shortId(c.other_patch_id)})`).join(", ")}`) : null,
                ),
              ),
            ),
          ),
        ),
      );
    }

    const refresh = throttle(load, 400);
    ctx.stream({ onOpen: refresh, onChange: (uris) => touches(uris, "patches://") && refresh() });
  },
};
