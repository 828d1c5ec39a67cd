// Live updates: one server-sent event stream per page view. `change` names the resources that
// changed (subagents://ID, patches://SESSION/ID, traces://SESSION, ...); a stream opened for one
// run also brings that run's new events and status (`run`). The browser reconnects by itself
// and resumes a run's events after the last one it got (Last-Event-ID).

const indicator = () => document.getElementById("live");

// `onOpen` runs each time the stream (re)connects: whatever changed while it was not listening
// was not announced, so a page reloads what it shows then.
export function openStream({ run = null, onOpen = null, onChange = null, onRun = null, onFailure = null } = {}) {
  const query = run ? `?run=${encodeURIComponent(run)}` : "";
  const source = new EventSource(`/api/stream${query}`);
  source.addEventListener("open", () => {
    setLive("live", "live");
    if (onOpen) onOpen();
  });
  source.addEventListener("error", () => setLive("reconnecting…", "off"));
  if (onChange) source.addEventListener("change", (e) => onChange(JSON.parse(e.data).uris));
  if (onRun) source.addEventListener("run", (e) => onRun(JSON.parse(e.data)));
  source.addEventListener("failure", (e) => {
    source.close();
    setLive("stopped", "off");
    if (onFailure) onFailure(new Error(JSON.parse(e.data).message));
  });
  return () => source.close();
}

function setLive(text, state) {
  const el = indicator();
  if (!el) return;
  el.textContent = text;
  el.dataset.state = state;
}

// Calls `fn` at most once per `ms`, and once more after a burst, so a page refetches a listing
// a few times a second at most however fast runs change.
export function throttle(fn, ms) {
  let timer = null;
  let again = false;
  const run = () => {
    timer = setTimeout(() => {
      timer = null;
      if (again) {
        again = false;
        fn();
        run();
      }
    }, ms);
  };
  return () => {
    if (timer) {
      again = true;
      return;
    }
    fn();
    run();
  };
}

export function touches(uris, prefix) {
  return uris.some((u) => u.startsWith(prefix));
}
