// The workflow API, evaluated in every sandbox context before the workflow script (see
// sandbox_child.py). It holds no way out of the interpreter: what the script asks of BooCode (a
// step, a log line, a budget) is queued here and collected by the sandbox whenever JavaScript
// yields (`__boocode.drain()`); step results come back through `__boocode.settle`. A script sees
// only args, agent, parallel, pipeline, phase, budget and log, plus the language's own built-ins.
(function (seed) {
  "use strict";
  const HINT =
    "a workflow script reaches only args, agent(), parallel(), pipeline(), phase(), budget() and log()";
  const outbox = []; // what the sandbox collects next
  const post = (msg) => {
    outbox.push(msg);
  };
  const pending = new Map(); // step call id -> {resolve, reject}
  let nextId = 0;
  const livePhases = []; // phase() calls whose function has not settled, in the order entered
  const liveScopes = []; // parallel()/pipeline() groups with a budget, while they run
  const STEP_RESULT = Symbol("step result");
  let running = false; // false while the script's top level runs: steps start only from run()
  let scopeSeq = 0;

  // -- nothing of the outside world --------------------------------------------------------
  const refuse = (name, why) => {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() {
        throw new ReferenceError(`${name} is not available in a workflow script: ${why}`);
      },
    });
  };
  for (const name of ["require", "module", "exports", "process", "Deno", "Bun", "fetch",
                      "XMLHttpRequest", "WebSocket", "setTimeout", "setInterval", "std", "os"]) {
    refuse(name, `${HINT} (no modules, processes, network, files or timers)`);
  }
  refuse("console", "use log(message), which records a line in the run's logs");
  delete globalThis.performance;

  // No clock: a workflow run again with the same args must ask its steps the same things, so
  // that they come from the step cache. A Date of a given time still works.
  const RealDate = Date;
  const noClock = (what) => {
    throw new TypeError(
      `${what} is not available in a workflow script: it has no clock, so that running it again ` +
        "asks its steps the same things and finds them in the step cache; pass a time in args"
    );
  };
  function SandboxDate(...a) {
    if (!new.target) noClock("Date()");
    if (a.length === 0) noClock("new Date() without a time");
    return Reflect.construct(RealDate, a, new.target);
  }
  SandboxDate.prototype = RealDate.prototype;
  SandboxDate.UTC = RealDate.UTC;
  SandboxDate.parse = RealDate.parse;
  SandboxDate.now = () => noClock("Date.now()");
  Object.defineProperty(RealDate.prototype, "constructor", { value: SandboxDate });
  globalThis.Date = SandboxDate;

  // Math.random draws the same numbers for the same workflow and args (sfc32, seeded by the host).
  let [s0, s1, s2, s3] = seed;
  Math.random = function random() {
    s0 >>>= 0; s1 >>>= 0; s2 >>>= 0; s3 >>>= 0;
    let t = (s0 + s1) | 0;
    s0 = s1 ^ (s1 >>> 9);
    s1 = (s2 + (s2 << 3)) | 0;
    s2 = (s2 << 21) | (s2 >>> 11);
    s3 = (s3 + 1) | 0;
    t = (t + s3) | 0;
    s2 = (s2 + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 15; i++) Math.random();

  // -- helpers ------------------------------------------------------------------------------
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const currentPhase = () => (livePhases.length ? livePhases[livePhases.length - 1].name : null);

  function errorText(e) {
    if (e instanceof Error) return `${e.name}: ${e.message}`;
    try {
      return typeof e === "string" ? e : JSON.stringify(e);
    } catch (_) {
      return String(e);
    }
  }

  function checkBudget(budget, where) {
    if (budget === undefined || budget === null) return null;
    if (typeof budget === "number") budget = { tokens: budget };
    if (!isObject(budget)) throw new TypeError(`${where}: budget must be {tokens?, steps?} or a number of tokens`);
    const out = {};
    for (const key of ["tokens", "steps"]) {
      const v = budget[key];
      if (v === undefined || v === null) continue;
      if (!Number.isInteger(v) || v < 0) throw new TypeError(`${where}: budget.${key} must be a whole number >= 0`);
      out[key] = v;
    }
    for (const key of Object.keys(budget)) {
      if (key !== "tokens" && key !== "steps") throw new TypeError(`${where}: budget has no field ${key}; use tokens and steps`);
    }
    return out;
  }

  // -- steps ----------------------------------------------------------------------------------
  class Step {
    constructor(id, opts) {
      this.id = id;
      this.opts = opts;
      Object.freeze(this);
    }

    run(input) {
      if (!running) {
        return Promise.reject(new Error(
          `agent(${JSON.stringify(this.id)}).run() at the top level of the script: steps start only from the workflow's run(args)`
        ));
      }
      let prompt = this.opts.prompt;
      if (input !== undefined && input !== null) {
        prompt += "\n\n" + (typeof input === "string" ? input : JSON.stringify(input, null, 2));
      }
      const id = ++nextId;
      post({
        op: "agent",
        id,
        step_id: this.id,
        prompt,
        agent: this.opts.agent ?? null,
        model: this.opts.model ?? null,
        mode: this.opts.mode ?? null,
        budget: this.opts.budget,
        phase: currentPhase(),
        scopes: liveScopes.map((s) => s.id),
      });
      return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    }
  }

  function agent(id, opts) {
    if (typeof id !== "string" || !id.trim()) throw new TypeError("agent(id, {...}): id must be a non-empty string");
    if (!isObject(opts)) throw new TypeError(`agent(${JSON.stringify(id)}, opts): opts must be an object with a prompt`);
    if (typeof opts.prompt !== "string" || !opts.prompt.trim()) {
      throw new TypeError(`agent(${JSON.stringify(id)}, opts): opts.prompt must be a non-empty string`);
    }
    for (const key of ["agent", "model", "mode"]) {
      const v = opts[key];
      if (v !== undefined && v !== null && typeof v !== "string") {
        throw new TypeError(`agent(${JSON.stringify(id)}, opts): opts.${key} must be a string`);
      }
    }
    const budget = checkBudget(opts.budget, `agent(${JSON.stringify(id)})`);
    return new Step(id, Object.freeze({ prompt: opts.prompt, agent: opts.agent, model: opts.model, mode: opts.mode, budget }));
  }

  function start(item, input, where) {
    if (item instanceof Step) return item.run(input);
    if (typeof item === "function") {
      try {
        return Promise.resolve(item(input));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return Promise.reject(new TypeError(`${where}: each item must be agent(...) or a function, got ${typeof item}`));
  }

  function openScope(options, kind) {
    if (options === undefined || options === null) return null;
    if (!isObject(options)) throw new TypeError(`${kind}(items, options): options must be an object`);
    const budget = checkBudget(options.budget, kind);
    if (budget === null) return null;
    const scope = { id: ++scopeSeq };
    post({ op: "scope", id: scope.id, kind, tokens: budget.tokens ?? null, steps: budget.steps ?? null });
    liveScopes.push(scope);
    return scope;
  }

  function closeScope(scope) {
    const i = liveScopes.indexOf(scope);
    if (i >= 0) liveScopes.splice(i, 1);
  }

  async function parallel(items, options) {
    if (!Array.isArray(items)) throw new TypeError("parallel(items): items must be an array");
    const scope = openScope(options, "parallel");
    try {
      const settled = await Promise.allSettled(items.map((item) => start(item, undefined, "parallel")));
      return settled.map((s) => (s.status === "fulfilled" ? { ok: true, value: s.value } : { ok: false, error: errorText(s.reason) }));
    } finally {
      closeScope(scope);
    }
  }

  async function pipeline(items, options) {
    if (!Array.isArray(items)) throw new TypeError("pipeline(items): items must be an array");
    const scope = openScope(options, "pipeline");
    try {
      let last;
      let output;
      for (let i = 0; i < items.length; i++) {
        last = await start(items[i], i === 0 ? undefined : output, "pipeline");
        output = last !== null && typeof last === "object" && last[STEP_RESULT] ? last.text : last;
      }
      return last;
    } finally {
      closeScope(scope);
    }
  }

  function phase(name, fn) {
    if (typeof name !== "string" || !name.trim()) throw new TypeError("phase(name, fn): name must be a non-empty string");
    if (typeof fn !== "function") throw new TypeError("phase(name, fn): fn must be a function");
    const entry = { name };
    livePhases.push(entry);
    const leave = () => {
      const i = livePhases.indexOf(entry);
      if (i >= 0) livePhases.splice(i, 1);
    };
    let result;
    try {
      result = fn();
    } catch (e) {
      leave();
      throw e;
    }
    if (result !== null && typeof result === "object" && typeof result.then === "function") {
      return Promise.resolve(result).finally(leave);
    }
    leave();
    return result;
  }

  function budget(limits) {
    const b = checkBudget(limits, "budget");
    if (b === null) throw new TypeError("budget({tokens?, steps?}): give the limits");
    post({ op: "budget", tokens: b.tokens ?? null, steps: b.steps ?? null });
  }

  function log(message) {
    let text = message;
    if (typeof text !== "string") {
      try {
        text = JSON.stringify(message);
      } catch (_) {
        text = String(message);
      }
    }
    post({ op: "log", message: String(text), phase: currentPhase() });
  }

  for (const [name, value] of Object.entries({ agent, parallel, pipeline, phase, budget, log })) {
    Object.defineProperty(globalThis, name, { value, writable: false, enumerable: false, configurable: false });
  }

  // -- what the sandbox calls ---------------------------------------------------------------
  function definition() {
    // `const workflow = …` is a global lexical binding, not a property of globalThis.
    let wf;
    try {
      wf = workflow; // eslint-disable-line no-undef
    } catch (_) {
      return { error: "the script defines no `workflow`: assign workflow = {name, description, args?, run(args)}" };
    }
    if (!isObject(wf)) return { error: "`workflow` must be an object {name, description, args?, run(args)}" };
    return { value: wf };
  }

  function describe() {
    const d = definition();
    if (d.error) return JSON.stringify(d);
    const wf = d.value;
    let args;
    try {
      args = wf.args === undefined ? null : JSON.parse(JSON.stringify(wf.args));
    } catch (e) {
      return JSON.stringify({ error: `workflow.args is not JSON: ${errorText(e)}` });
    }
    return JSON.stringify({
      value: {
        name: wf.name,
        description: wf.description,
        args,
        run: typeof wf.run,
      },
    });
  }

  function finish(ok, value) {
    let msg;
    if (ok) {
      try {
        msg = { op: "done", ok: true, value: value === undefined ? null : JSON.parse(JSON.stringify(value)) };
      } catch (e) {
        msg = { op: "done", ok: false, error: { text: `run() returned a value that is not JSON: ${errorText(e)}`, stack: "" } };
      }
    } else {
      msg = { op: "done", ok: false, error: { text: errorText(value), stack: value instanceof Error ? String(value.stack || "") : "" } };
    }
    post(msg);
  }

  // The run's args, as a global, before the script's top level runs (describing: {}).
  function bind(argsJson) {
    Object.defineProperty(globalThis, "args", { value: JSON.parse(argsJson), writable: false, configurable: false });
  }

  function startRun() {
    const d = definition();
    if (d.error) {
      post({ op: "done", ok: false, error: { text: d.error, stack: "" } });
      return;
    }
    if (typeof d.value.run !== "function") {
      post({ op: "done", ok: false, error: { text: "workflow.run must be a function run(args)", stack: "" } });
      return;
    }
    running = true;
    Promise.resolve()
      .then(() => d.value.run(globalThis.args))
      .then((v) => finish(true, v), (e) => finish(false, e));
  }

  function settle(id, ok, payload) {
    const p = pending.get(id);
    if (p === undefined) return;
    pending.delete(id);
    if (ok) {
      const value = JSON.parse(payload);
      Object.defineProperty(value, STEP_RESULT, { value: true });
      p.resolve(Object.freeze(value));
    } else {
      p.reject(new Error(payload));
    }
  }

  // Everything posted since the last call, as JSON.
  function drain() {
    return JSON.stringify(outbox.splice(0, outbox.length));
  }

  Object.defineProperty(globalThis, "__boocode", {
    value: Object.freeze({ bind, describe, drain, start: startRun, settle }),
    enumerable: false,
    writable: false,
    configurable: false,
  });
})(__boocode_seed);
delete globalThis.__boocode_seed;
