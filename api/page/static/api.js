// Calls to the K2 API from the page: the key the user entered goes in the X-API-Key header, and every failure
// becomes an ApiError whose message a person can act on.

const KEY_STORAGE = "k2.apiKey";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// `?key=` in the address (the demo's link) wins and is then remembered; it is taken out of the address bar so it
// does not linger in history or screenshots.
export function initialKey() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("key");
  if (fromUrl) {
    rememberKey(fromUrl);
    url.searchParams.delete("key");
    window.history.replaceState(null, "", url);
    return fromUrl;
  }
  return window.localStorage.getItem(KEY_STORAGE) || "";
}

export function rememberKey(key) {
  if (key) window.localStorage.setItem(KEY_STORAGE, key);
  else window.localStorage.removeItem(KEY_STORAGE);
}

export async function getJson(path, params, key) {
  if (!key) throw new ApiError(401, "The API needs a key: enter it above.");
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  let response;
  try {
    response = await fetch(url, { headers: { "X-API-Key": key, Accept: "application/json" } });
  } catch (error) {
    throw new ApiError(0, `The API did not answer (${error.message}).`);
  }
  if (response.ok) return response.json();
  let detail = "";
  try {
    const problem = await response.json(); // RFC 9457 problem document
    detail = problem.detail || problem.title || "";
  } catch {
    // not JSON: the status says enough
  }
  throw new ApiError(response.status, explain(response.status, detail));
}

function explain(status, detail) {
  switch (status) {
    case 401:
      return "The API needs a key: enter it above.";
    case 403:
      return "The API does not accept this key: check it against K2_API_KEYS on the server.";
    case 429:
      return "Too many requests with this key: wait a second and reload.";
    case 400:
      return `The API rejected the request: ${detail}`;
    default:
      return `The API answered ${status}${detail ? `: ${detail}` : ""}.`;
  }
}

// The chart library is a separate build step; when it is missing, the API's answer says how to build it.
export async function chartLibraryProblem() {
  try {
    const response = await fetch("/page/vendor/lightweight-charts.js", { method: "GET" });
    const problem = await response.json();
    return problem.detail || `the chart library answered ${response.status}`;
  } catch {
    return "the chart library did not load: run `make page-assets`";
  }
}
