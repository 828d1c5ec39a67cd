// best-of-n: one task to several agents at once, each in its own worktree; a judge agent compares
// their patches and recommends one. Nothing is applied: apply the recommended patch yourself
// (apply_pending with its id) once you have looked at it.
workflow = {
  name: "best-of-n",
  description:
    "Give one task to several agents in parallel (each works in its own worktree), then have a judge " +
    "agent compare their patches and recommend one. Result: {recommended_patch_id, reason, patches: " +
    "[{agent, patch_id}]}; nothing is applied.",
  args: {
    type: "object",
    properties: {
      task: { type: "string", minLength: 1, description: "what each agent should do" },
      agents: {
        type: "array",
        items: { type: "string", minLength: 1 },
        minItems: 1,
        description: "the agents to try, e.g. [\"opencode\", \"qwen\"]; a name twice samples that agent twice",
      },
      judge: { type: "string", minLength: 1, description: "the agent that compares the patches (default: the first of agents)" },
    },
    required: ["task", "agents"],
    additionalProperties: false,
  },

  async run({ task, agents, judge }) {
    const attempts = await phase("attempt", () =>
      parallel(agents.map((name, i) => agent(`attempt-${i + 1}-${name}`, { prompt: task, agent: name })))
    );
    const patches = attempts.map((r, i) => ({ agent: agents[i], patch_id: r.ok ? r.value.patch_id : null }));
    const candidates = [];
    attempts.forEach((r, i) => {
      if (!r.ok) log(`${agents[i]} failed: ${r.error}`);
      else if (!r.value.patch_id) log(`${agents[i]} changed no file`);
      else candidates.push({ agent: agents[i], ...r.value });
    });
    if (candidates.length === 0) {
      return { recommended_patch_id: null, reason: "no agent produced a patch", patches };
    }
    if (candidates.length === 1) {
      const only = candidates[0];
      return { recommended_patch_id: only.patch_id, reason: `only ${only.agent} produced a patch`, patches };
    }
    const listing = candidates
      .map(
        (c, i) =>
          `## Candidate ${i + 1} (agent ${c.agent}, patch ${c.patch_id})\n` +
          `Its own summary: ${c.text || "(none)"}\n\n\`\`\`diff\n${c.diff || "(no diff)"}\n\`\`\``
      )
      .join("\n\n");
    const verdict = await phase("judge", () =>
      agent("judge", {
        agent: judge || agents[0],
        prompt:
          `Several agents were each given this task, each in a separate copy of the repository:\n\n${task}\n\n` +
          `Their patches follow. Compare them for correctness, completeness and code quality; do not ` +
          `change any file. Answer with exactly two lines: "RECOMMEND: N" where N is the number of the ` +
          `best candidate, then "REASON: " and why, in one or two sentences.`,
      }).run(listing)
    );
    const picked = /RECOMMEND:\s*(?:candidate\s*)?#?(\d+)/i.exec(verdict.text);
    const index = picked ? Number(picked[1]) - 1 : -1;
    if (index < 0 || index >= candidates.length) {
      const excerpt = verdict.text.replace(/\s+/g, " ").slice(0, 300);
      return {
        recommended_patch_id: candidates[0].patch_id,
        reason: `the judge named no candidate, so the first is recommended; the judge said: ${excerpt}`,
        patches,
      };
    }
    const reason = /REASON:\s*([\s\S]+)/i.exec(verdict.text);
    return {
      recommended_patch_id: candidates[index].patch_id,
      reason: reason ? reason[1].trim() : `the judge recommends candidate ${index + 1} (${candidates[index].agent})`,
      patches,
    };
  },
};
