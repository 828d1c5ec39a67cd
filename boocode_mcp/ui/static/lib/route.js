// Addresses inside the page: #/path/arg?key=value.

export function href(path, arg = null, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") query.set(k, v);
  const qs = query.toString();
  return `#/${path}${arg ? `/${encodeURIComponent(arg)}` : ""}${qs ? `?${qs}` : ""}`;
}

export function parse(hash) {
  const raw = hash.replace(/^#\/?/, "");
  const [route, query = ""] = raw.split("?", 2);
  const [path, ...rest] = route.split("/");
  return { path, arg: rest.length ? decodeURIComponent(rest.join("/")) : null, params: new URLSearchParams(query) };
}
