// A patch: its files and highlighted diff, and apply / check / discard. Apply is all or nothing:
// on a conflict the result lists each conflicting file and the workspace is left unchanged.
import { act, read } from "../lib/api.js";
import { badge, failure, h, link, replace, section } from "../lib/dom.js";
import { shortId, when } from "../lib/fmt.js";
import { applyResult, renderDiff } from "../lib/diff.js";
import { touches } from "../lib/live.js";
import { href } from "../lib/route.js";

export default {
  path: "patch",
  title: "Patch",
  navAs: "patches",
  render(ctx) {
    const id = ctx.arg;
    const head = h("div", { class: "card" });
    const result = h("div", { class: "action-result" });
    const diff = h("div");
    replace(ctx.view, h("h1", {}, "Patch ", h("span", { class: "mono" }, shortId(id))), head, result, section("Diff", diff));

    async function run(call) {
      for (const b of head.querySelectorAll("button")) b.disabled = true;
      try {
        replace(result, await call());
      } catch (e) {
        replace(result, failure(e));
      }
      await load(false);
    }

    const apply = (dryRun) => run(async () => applyResult(await act("apply_pending", { patch_ids: [id], dry_run: dryRun })));
    const discard = () =>
      run(async () => {
        const p = await act("discard_patch", { patch_id: id });
        return h("div", { class: "apply-result ok" }, `Discarded: the patch is ${p.status}; its changes left the chat's worktree.`);
      });

    async function load(withDiff = true) {
      let p;
      try {
        p = await read("get_patch", { patch_id: id });
      } catch (e) {
        replace(head, failure(e));
        return;
      }
      const pending = p.status === "pending";
      replace(
        head,
        h(
          "div",
          { class: "head-line" },
          badge(p.status),
          h("strong", {}, p.agent),
          h("span", { class: "adds" }, `+${p.additions}`),
          h("span", { class: "dels" }, `−${p.deletions}`),
          pending ? h("button", { onclick: () => apply(false) }, "Apply") : null,
          pending ? h("button", { class: "secondary", onclick: () => apply(true) }, "Check") : null,
          pending ? h("button", { class: "danger", onclick: discard }, "Discard") : null,
        ),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "patch"), h("dd", { class: "mono" }, p.id),
          h("dt", {}, "run"), h("dd", { class: "mono" }, p.subagent_id ? link(href("run", p.subagent_id), p.subagent_id) : "–"),
          h("dt", {}, "chat"), h("dd", { class: "mono" }, p.chat_id),
          h("dt", {}, "session"), h("dd", { class: "mono" }, p.session_id),
          h("dt", {}, "base"), h("dd", { class: "mono" }, p.base_sha || "–"),
          h("dt", {}, "created"), h("dd", {}, when(p.created_at)),
          p.parent_patch_id ? [h("dt", {}, "supersedes"), h("dd", { class: "mono" }, link(href("patch", p.parent_patch_id), p.parent_patch_id))] : null,
        ),
        p.failed_mid_turn ? h("p", { class: "note" }, "The turn that made this patch did not finish.") : null,
        p.collisions.length
          ? h("p", { class: "flag" }, "Overlaps other pending patches: ", p.collisions.map((c) => [link(href("patch", c.other_patch_id), `${c.file} (${shortId(c.other_patch_id)})`), " "]))
          : null,
      );
      if (withDiff) replace(diff, renderDiff(p));
    }

    ctx.stream({ onChange: (uris) => touches(uris, "patches://") && uris.some((u) => u.endsWith(`/${id}`)) && load(false) });
    load();
  },
};
