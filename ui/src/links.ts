// Airflow links, relative to the page's <base href> (Airflow may be served under a sub-path).
// Every path segment is encodeURIComponent'ed: run ids hold ':' and '+', and any id may be hostile.

const seg = encodeURIComponent;

/** The url_route of each of our react_apps (plugins/tradeops_plugin.py declares the same). */
export const DESK_ROUTE = "tradeops-desk";
export const SAGA_ROUTE = "tradeops-saga";

export function runLink(dagId: string, runId: string): string {
  return `dags/${seg(dagId)}/runs/${seg(runId)}`;
}

export function sagaTabLink(dagId: string, runId: string): string {
  return `${runLink(dagId, runId)}/plugin/${SAGA_ROUTE}`;
}

/** A task's page (Airflow opens its log); a mapped task instance has its own page per index. */
export function taskLink(dagId: string, runId: string, taskId: string, mapIndex: number = -1): string {
  const task = `${runLink(dagId, runId)}/tasks/${seg(taskId)}`;
  return mapIndex >= 0 ? `${task}/mapped/${mapIndex}` : task;
}

export function deskLink(): string {
  return `plugin/${DESK_ROUTE}`;
}

export function requiredActionsLink(): string {
  return "required_actions";
}

/** Airflow's own login entry (what its UI does on a 401), coming back to where the user was. */
export function loginLink(next: string): string {
  return `api/v2/auth/login?${new URLSearchParams({ next }).toString()}`;
}

/** A query string from the values that are set (empty strings are left out). */
export function withQuery(path: string, params: Record<string, string | number | undefined>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
