// multi-review: three reviews of one change in parallel (correctness, security, tests), their
// findings merged into one list. The reviewers are asked not to change files.
const REVIEWS = {
  correctness: "bugs: wrong results, unhandled cases, broken error handling, races, resource leaks",
  security: "security: injection, unsafe input handling, secrets, permissions, path traversal, unsafe defaults",
  tests: "tests: behaviour the change adds or alters that no test pins, tests that cannot fail, missing edge cases",
};

workflow = {
  name: "multi-review",
  description:
    "Review a change three ways in parallel (correctness, security, tests) and merge the findings. " +
    "Result: {findings: [{review, severity, text}], reviews: [{review, agent, subagent_id, text}]}.",
  args: {
    type: "object",
    properties: {
      change: {
        type: "string",
        minLength: 1,
        description: "what to review, as a reviewer should find it: e.g. \"the last commit\", \"the diff of main..feature\", or a pasted diff",
      },
      agent: { type: "string", minLength: 1, description: "the agent doing all three reviews (default: the workspace's default agent)" },
      agents: {
        type: "object",
        properties: { correctness: { type: "string" }, security: { type: "string" }, tests: { type: "string" } },
        additionalProperties: false,
        description: "a different agent per review, overriding agent",
      },
    },
    required: ["change"],
    additionalProperties: false,
  },

  async run({ change, agent: reviewer, agents = {} }) {
    const names = Object.keys(REVIEWS);
    const results = await phase("review", () =>
      parallel(
        names.map((name) =>
          agent(`review-${name}`, {
            agent: agents[name] || reviewer,
            prompt:
              `Review this change for ${REVIEWS[name]}. Do not change any file.\n\n` +
              `List each finding on its own line as "- [high|medium|low] file:line: what is wrong and what to do"; ` +
              `write "- none" when you find nothing.`,
          }).run(`The change to review: ${change}`)
        )
      )
    );
    const findings = [];
    const seen = new Set();
    const reviews = [];
    results.forEach((r, i) => {
      const review = names[i];
      if (!r.ok) {
        log(`the ${review} review failed: ${r.error}`);
        return;
      }
      reviews.push({ review, agent: agents[review] || reviewer || null, subagent_id: r.value.subagent_id, text: r.value.text });
      for (const line of r.value.text.split("\n")) {
        const m = /^\s*[-*]\s*(?:\[(high|medium|low)\]\s*)?(.+?)\s*$/i.exec(line);
        if (!m || /^none\.?$/i.test(m[2])) continue;
        const key = m[2].toLowerCase();
        if (seen.has(key)) continue;
        seen.add(key);
        findings.push({ review, severity: (m[1] || "medium").toLowerCase(), text: m[2] });
      }
    });
    const order = { high: 0, medium: 1, low: 2 };
    findings.sort((a, b) => order[a.severity] - order[b.severity]);
    log(`${findings.length} findings from ${reviews.length} reviews`);
    return { findings, reviews };
  },
};
