import { useCallback, useEffect, useRef, useState } from "react";

import { ApiError, getJson } from "./api";
import { resolveZone, TIMEZONE_KEY } from "./time";

export const POLL_MS = 5000;

export interface Poll<T> {
  data: T | undefined;
  error: ApiError | undefined;
  /** When the last good answer arrived (ms since the epoch). */
  updatedAt: number | undefined;
  reload: () => void;
}

function pageHidden(): boolean {
  return typeof document !== "undefined" && document.visibilityState === "hidden";
}

/**
 * GETs `path` now and every `intervalMs` while the tab is visible (once more as soon as it shows
 * again). A failed request keeps the last good data and reports its error beside it.
 */
export function usePoll<T>(path: string | null, intervalMs: number = POLL_MS): Poll<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [updatedAt, setUpdatedAt] = useState<number | undefined>(undefined);
  const [generation, setGeneration] = useState(0);
  const pathRef = useRef(path);

  useEffect(() => {
    if (pathRef.current !== path) {
      pathRef.current = path;
      setData(undefined);
      setUpdatedAt(undefined);
    }
    if (path === null) return undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let controller: AbortController | undefined;
    let stopped = false;

    const schedule = (): void => {
      if (!stopped && !pageHidden()) timer = setTimeout(tick, intervalMs);
    };
    const tick = async (): Promise<void> => {
      timer = undefined;
      controller = new AbortController();
      try {
        const body = await getJson<T>(path, controller.signal);
        if (stopped) return;
        setData(body);
        setError(undefined);
        setUpdatedAt(Date.now());
      } catch (caught) {
        if (stopped || (caught instanceof DOMException && caught.name === "AbortError")) return;
        setError(caught instanceof ApiError ? caught : new ApiError(0, String(caught)));
      }
      schedule();
    };
    const onVisibility = (): void => {
      if (pageHidden()) {
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
      } else if (timer === undefined) {
        void tick();
      }
    };

    void tick();
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      controller?.abort();
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [path, intervalMs, generation]);

  const reload = useCallback(() => setGeneration((n) => n + 1), []);
  return { data, error, updatedAt, reload };
}

/** The current time, re-rendered every `everyMs` (for "updated 4s ago"). */
export function useNow(everyMs: number = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(id);
  }, [everyMs]);
  return now;
}

function readZone(): string {
  let stored: string | null = null;
  try {
    stored = window.localStorage.getItem(TIMEZONE_KEY);
  } catch {
    stored = null;
  }
  return resolveZone(stored, Intl.DateTimeFormat().resolvedOptions().timeZone);
}

/** The zone Airflow's timezone picker chose; follows changes in this tab and in others. */
export function useTimezone(): string {
  const [zone, setZone] = useState(readZone);
  useEffect(() => {
    const onChange = (event: Event): void => {
      const key = event instanceof StorageEvent ? event.key : null;
      if (key === null || key === TIMEZONE_KEY) setZone(readZone());
    };
    window.addEventListener("local-storage", onChange);
    window.addEventListener("storage", onChange);
    return () => {
      window.removeEventListener("local-storage", onChange);
      window.removeEventListener("storage", onChange);
    };
  }, []);
  return zone;
}
