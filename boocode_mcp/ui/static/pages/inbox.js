// The inbox: what needs a person, newest first, live. Failed and interrupted runs not retried yet
// (retry one here: the same prompt on the same chat, as a new run), runs waiting for a permission
// answer (answered on the run's page), pending patches whose apply conflicted (look at the patch,
// or discard it).
import { act, read } from "../lib/api.js";
import { badge, empty, failure, h, link, replace } from "../lib/dom.js";
import { ago, shortId, when } from "../lib/fmt.js";
import { throttle, touches } from "../lib/live.js";
import { href } from "../lib/route.js";

const KINDS = {
  failed: "failed",
  interrupted: "interrupted",
  permission: "waiting for permission",
  conflict: "apply conflicted",
};

export default {
  path: "inbox",
  title: "Inbox",
  nav: true,
  render(ctx) {
    const body = h("div", { class: "card" });
    const result = h("div", { class: "action-result" });
    replace(ctx.view, h("h1", {}, "Inbox"), result, body);

    async function retry(item, button) {
      button.disabled = true;
      try {
        const out = await act("retry_subagent", { subagent_id: item.subagent_id });
        replace(result, h("p", {}, "retried as ", link(href("run", out.subagent_id), shortId(out.subagent_id), { title: out.subagent_id })));
      } catch (e) {
        button.disabled = false;
        replace(result, failure(e));
      }
      refresh();
    }

    async function discard(item, button) {
      button.disabled = true;
      try {
        await act("discard_patch", { patch_id: item.patch_id });
        replace(result, h("p", {}, `discarded patch ${shortId(item.patch_id)}`));
      } catch (e) {
        button.disabled = false;
        replace(result, failure(e));
      }
      refresh();
    }

    function whatFor(item) {
      if (item.kind === "conflict") return link(href("patch", item.patch_id), `patch ${shortId(item.patch_id)}`, { title: item.patch_id });
      return link(href("run", item.subagent_id), `run ${shortId(item.subagent_id)}`, { title: item.subagent_id });
    }

    function action(item) {
      if (item.kind === "failed" || item.kind === "interrupted") {
        const button = h("button", { onclick: () => retry(item, button) }, "Retry");
        return button;
      }
      if (item.kind === "conflict") {
        const button = h("button", { class: "secondary", onclick: () => discard(item, button) }, "Discard");
        return button;
      }
      return link(href("run", item.subagent_id), "Answer on the run's page");
    }

    async function load() {
      let inbox;
      try {
        inbox = await read("inbox", { limit: 200 });
      } catch (e) {
        replace(body, failure(e));
        return;
      }
      if (!inbox.items.length) {
        replace(body, empty("nothing needs you: no failed runs to retry, no permission requests, no conflicted patches"));
        return;
      }
      replace(
        body,
        h(
          "table",
          { class: "inbox" },
          h("thead", {}, h("tr", {}, ["what", "", "status", "why", "when", ""].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            inbox.items.map((item) =>
              h(
                "tr",
                { dataset: { kind: item.kind, item: item.subagent_id || item.patch_id } },
                h("td", {}, KINDS[item.kind] || item.kind),
                h("td", { class: "mono" }, whatFor(item)),
                h("td", {}, badge(item.status)),
                h("td", { class: "notes" }, item.reason),
                h("td", { title: when(item.created_at) }, ago(item.created_at)),
                h("td", {}, action(item)),
              ),
            ),
          ),
        ),
      );
    }

    const refresh = throttle(load, 400);
    // A conflicted patch leaves the inbox when it is applied or discarded (a patches:// change).
    ctx.stream({ onOpen: refresh, onChange: (uris) => (touches(uris, "inbox://") || touches(uris, "patches://")) && refresh() });
  },
};
