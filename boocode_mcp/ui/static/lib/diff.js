// A patch's hunks as a side-by-side-numbered unified diff, code highlighted by Prism (vendored,
// loaded before the page) in the language its file name suggests.
import { h } from "./dom.js";

const LANGUAGES = {
  py: "python", pyi: "python", js: "javascript", mjs: "javascript", cjs: "javascript", jsx: "javascript",
  ts: "typescript", tsx: "typescript", json: "json", sh: "bash", bash: "bash", zsh: "bash",
  yml: "yaml", yaml: "yaml", toml: "toml", md: "markdown", markdown: "markdown", go: "go", rs: "rust",
  java: "java", c: "c", h: "c", cc: "cpp", cpp: "cpp", cxx: "cpp", hpp: "cpp", sql: "sql", rb: "ruby",
  ini: "ini", cfg: "ini", css: "css", html: "markup", htm: "markup", xml: "markup", svg: "markup",
};
const NAMES = { Dockerfile: "docker", Makefile: "makefile", makefile: "makefile", GNUmakefile: "makefile" };

function languageOf(path) {
  const name = path.split("/").pop();
  if (NAMES[name]) return NAMES[name];
  const dot = name.lastIndexOf(".");
  return dot > 0 ? LANGUAGES[name.slice(dot + 1).toLowerCase()] || null : null;
}

function code(text, language) {
  const el = h("code", {});
  const grammar = language && window.Prism ? window.Prism.languages[language] : null;
  if (grammar) {
    // Prism escapes the text it is given; its output is markup of that escaped text only.
    el.innerHTML = window.Prism.highlight(text, grammar, language);
  } else {
    el.textContent = text;
  }
  return el;
}

function hunkTable(hunk, language) {
  let oldNo = hunk.old_start;
  let newNo = hunk.new_start;
  const rows = [
    h(
      "tr",
      { class: "hunk-head" },
      h("td", { colspan: 3 }, `@@ -${hunk.old_start},${hunk.old_count} +${hunk.new_start},${hunk.new_count} @@ ${hunk.section || ""}`),
    ),
  ];
  for (const line of hunk.lines) {
    const mark = line[0];
    const text = line.slice(1);
    if (mark === "\\") {
      rows.push(h("tr", { class: "d-meta" }, h("td", {}), h("td", {}), h("td", {}, line)));
      continue;
    }
    const cls = mark === "+" ? "d-add" : mark === "-" ? "d-del" : "d-ctx";
    const left = mark === "+" ? "" : oldNo++;
    const right = mark === "-" ? "" : newNo++;
    rows.push(
      h(
        "tr",
        { class: cls },
        h("td", { class: "ln" }, left),
        h("td", { class: "ln" }, right),
        h("td", { class: "src" }, h("span", { class: "mark" }, mark === " " ? " " : mark), code(text, language)),
      ),
    );
  }
  return rows;
}

export function renderDiff(patch) {
  const byFile = new Map();
  for (const hunk of patch.hunks || []) {
    if (!byFile.has(hunk.file)) byFile.set(hunk.file, []);
    byFile.get(hunk.file).push(hunk);
  }
  return h(
    "div",
    { class: "diff" },
    patch.files.map((f) => {
      const language = languageOf(f.path);
      const hunks = byFile.get(f.path) || [];
      return h(
        "div",
        { class: "diff-file", dataset: { file: f.path } },
        h(
          "div",
          { class: "diff-file-head" },
          h("span", { class: `file-status fs-${f.status}` }, f.status),
          h("span", { class: "mono" }, f.old_path && f.old_path !== f.path ? `${f.old_path} → ${f.path}` : f.path),
          h("span", { class: "adds" }, `+${f.additions}`),
          h("span", { class: "dels" }, `−${f.deletions}`),
        ),
        f.binary
          ? h("p", { class: "empty" }, "binary file")
          : hunks.length
            ? h("table", { class: "diff-table" }, h("tbody", {}, hunks.map((hk) => hunkTable(hk, language))))
            : h("p", { class: "empty" }, "no content change"),
      );
    }),
  );
}

// What an apply (or its dry run) did: all patches or none.
export function applyResult(out) {
  if (out.conflicts.length) {
    return h(
      "div",
      { class: "apply-result conflict", role: "alert" },
      h("strong", {}, "Nothing applied: the workspace is unchanged."),
      h(
        "table",
        { class: "conflicts" },
        h("thead", {}, h("tr", {}, h("th", {}, "patch"), h("th", {}, "file"), h("th", {}, "why"))),
        h(
          "tbody",
          {},
          out.conflicts.map((c) => h("tr", {}, h("td", { class: "mono" }, c.patch_id.slice(0, 8)), h("td", { class: "mono" }, c.file), h("td", {}, c.reason))),
        ),
      ),
    );
  }
  if (!out.applied.length) return h("div", { class: "apply-result" }, "Nothing to apply.");
  const verb = out.dry_run ? "Would apply" : "Applied";
  return h(
    "div",
    { class: `apply-result ${out.dry_run ? "dry" : "ok"}` },
    h("strong", {}, `${verb} ${out.applied.length} patch${out.applied.length > 1 ? "es" : ""}: `),
    h("span", { class: "mono" }, out.applied.map((id) => id.slice(0, 8)).join(", ")),
    out.dry_run ? " (checked only; nothing written)" : " to the workspace.",
    out.commit_sha ? ` Committed ${out.commit_sha.slice(0, 10)}.` : "",
  );
}
