// The public API as staff: every call carries `Authorization: Bearer <staff token>` (kept in
// sessionStorage: this tab only). A problem document answer becomes an ApiError carrying it.

const KEY = 'oms.staff-token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem && problem.title ? `${problem.title}: ${problem.detail || ''}` : `HTTP ${status}`);
    this.status = status;
    this.problem = problem || { status, title: `HTTP ${status}`, detail: 'The server answered without a problem document.' };
  }
}

/** Calls the API; resolves to the parsed JSON body (null for 204), rejects with ApiError. */
export async function api(method, path, { body, idempotencyKey, auth = token.get() } = {}) {
  const headers = { accept: 'application/json, application/problem+json' };
  if (auth) headers.authorization = `Bearer ${auth}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  let res;
  try {
    res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-cache',
    });
  } catch (e) {
    throw new ApiError(0, { status: 0, title: 'Network error', detail: String(e.message || e) });
  }
  const text = await res.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

export function newKey(prefix) {
  return `${prefix}-${crypto.randomUUID()}`;
}
