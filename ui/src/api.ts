// Requests to the desk's API (tradeops/api/...), relative to the page's <base href>, with the
// Airflow session cookie. Errors carry the HTTP status so each view can say what went wrong.

export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }

  /** 401 or 403: the Airflow session is gone (the desk's routes only ask for a login). */
  get sessionExpired(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

export const SESSION_EXPIRED = "session expired: log in again";

function apiUrl(path: string): string {
  return new URL(`tradeops/api/${path}`, document.baseURI).href;
}

/** The server's own words for an error: FastAPI's "detail" (text or a list), else the status. */
export function errorDetail(status: number, body: unknown, statusText: string): string {
  if (status === 401 || status === 403) return SESSION_EXPIRED;
  if (body !== null && typeof body === "object" && "detail" in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((item) => (item !== null && typeof item === "object" && "msg" in item ? String(item.msg) : String(item)))
        .join("; ");
    }
  }
  return `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function send<T>(path: string, init: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(apiUrl(path), {
      credentials: "same-origin",
      cache: "no-store",
      ...init,
      headers: { Accept: "application/json", ...init.headers },
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, `the API server did not answer (${String(error)})`);
  }
  const body = await readBody(response);
  if (!response.ok) throw new ApiError(response.status, errorDetail(response.status, body, response.statusText));
  return body as T;
}

export function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  return send<T>(path, { method: "GET", signal: signal ?? null });
}

/** A POST action; `action` goes to X-Tradeops-Action, which the API requires for every action. */
export function postAction<T>(path: string, action: string, body: unknown): Promise<T> {
  return send<T>(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Tradeops-Action": action },
    body: JSON.stringify(body),
  });
}
