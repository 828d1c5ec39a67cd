// The operations the page may call: the same names, arguments and answers as the daemon's API
// and the MCP tools. Reads are GETs, actions are same-origin JSON POSTs; the login cookie rides
// along with both.

class ApiError extends Error {
  constructor(type, message, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

async function answer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError("HttpError", `the server answered ${response.status}`, response.status);
  }
  if (body.error) throw new ApiError(body.error.type, body.error.message, response.status);
  return body.result;
}

export async function read(name, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") query.set(k, v);
  const qs = query.toString();
  return answer(await fetch(`/api/${name}${qs ? `?${qs}` : ""}`));
}

export async function act(name, body = {}) {
  return answer(
    await fetch(`/api/${name}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
  );
}
