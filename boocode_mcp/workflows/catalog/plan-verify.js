// plan-verify: one agent plans a task, another checks the plan against the code, and the checked
// plan becomes a list of work items. No file is changed.
workflow = {
  name: "plan-verify",
  description:
    "Plan a task, have a second agent verify the plan against the code, and turn the verified plan " +
    "into work items. Result: {plan, verified_plan, work_items: [string]}.",
  args: {
    type: "object",
    properties: {
      task: { type: "string", minLength: 1, description: "what should be done" },
      planner: { type: "string", minLength: 1, description: "the agent that plans (default: the workspace's default agent)" },
      verifier: { type: "string", minLength: 1, description: "the agent that verifies (default: the planner)" },
    },
    required: ["task"],
    additionalProperties: false,
  },

  async run({ task, planner, verifier }) {
    const plan = await phase("plan", () =>
      agent("plan", {
        agent: planner,
        prompt:
          `Plan this task; do not change any file yet. Read the code it touches, then write a numbered ` +
          `plan of small concrete steps, each naming the files it changes.\n\nThe task: ${task}`,
      }).run()
    );
    const verified = await phase("verify", () =>
      agent("verify", {
        agent: verifier || planner,
        prompt:
          `Check this plan against the code; do not change any file. Correct what is wrong or missing ` +
          `(files that do not exist, steps in the wrong order, tests left out). Then write the final plan ` +
          `as work items, one per line, each starting with "- [ ] ".\n\nThe task: ${task}\n\nThe plan:`,
      }).run(plan.text)
    );
    const items = verified.text
      .split("\n")
      .map((line) => /^\s*[-*]\s*\[[ xX]?\]\s*(.+?)\s*$/.exec(line))
      .filter(Boolean)
      .map((m) => m[1]);
    log(`${items.length} work items`);
    return { plan: plan.text, verified_plan: verified.text, work_items: items };
  },
};
