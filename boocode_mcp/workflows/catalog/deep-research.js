// deep-research: several agents investigate one question from different angles in parallel; one
// more synthesises their findings into an answer. No file is changed.
const DEFAULT_ANGLES = [
  "how the code does this today: the files, functions and data involved",
  "what can go wrong: edge cases, failure modes, limits",
  "what else could be done: alternatives and their trade-offs",
];

workflow = {
  name: "deep-research",
  description:
    "Investigate a question about the codebase from several angles in parallel, then synthesise one " +
    "answer. Result: {answer, findings: [{angle, text}]}.",
  args: {
    type: "object",
    properties: {
      question: { type: "string", minLength: 1, description: "what to find out" },
      angles: {
        type: "array",
        items: { type: "string", minLength: 1 },
        minItems: 1,
        maxItems: 8,
        description: "the angles to investigate from (default: current behaviour, failure modes, alternatives)",
      },
      agent: { type: "string", minLength: 1, description: "the agent doing the research (default: the workspace's default agent)" },
    },
    required: ["question"],
    additionalProperties: false,
  },

  async run({ question, angles = DEFAULT_ANGLES, agent: researcher }) {
    const results = await phase("investigate", () =>
      parallel(
        angles.map((angle, i) =>
          agent(`investigate-${i + 1}`, {
            agent: researcher,
            prompt:
              `Investigate this question about the repository, looking at ${angle}. Do not change any ` +
              `file. Cite files and functions. Report what you found in at most 300 words.\n\nThe question: ${question}`,
          })
        )
      )
    );
    const findings = [];
    results.forEach((r, i) => {
      if (r.ok) findings.push({ angle: angles[i], text: r.value.text });
      else log(`angle ${i + 1} failed: ${r.error}`);
    });
    if (findings.length === 0) throw new Error("every investigation failed; see the logs");
    const synthesis = await phase("synthesise", () =>
      agent("synthesise", {
        agent: researcher,
        prompt:
          `Answer this question from the findings below, resolving where they disagree; do not change any ` +
          `file.\n\nThe question: ${question}\n\nThe findings:`,
      }).run(findings.map((f) => `### ${f.angle}\n${f.text}`).join("\n\n"))
    );
    return { answer: synthesis.text, findings };
  },
};
