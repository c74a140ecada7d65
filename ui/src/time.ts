// Times in the user's zone, named. Airflow 3.3 keeps the zone the user picked in localStorage
// under "timezone" (a JSON string); when unset its UI shows the browser's own zone, so do we.

export const TIMEZONE_KEY = "timezone";

/** Whether Intl knows the zone (a bad stored value must not break every time on the page). */
export function isValidZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The zone from the stored value (JSON text or null), else the browser's zone, else UTC. */
export function resolveZone(stored: string | null, browserZone: string | undefined): string {
  if (stored !== null) {
    try {
      const value: unknown = JSON.parse(stored);
      if (typeof value === "string" && isValidZone(value)) return value;
    } catch {
      // not JSON: fall through to the browser's zone
    }
  }
  return browserZone && isValidZone(browserZone) ? browserZone : "UTC";
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let fmt = formatters.get(zone);
  if (fmt === undefined) {
    fmt = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
      timeZoneName: "short",
    });
    formatters.set(zone, fmt);
  }
  return fmt;
}

/** "2026-12-02 05:15:00 EST"; "—" for null; the raw text when it is no time at all. */
export function formatTime(iso: string | null | undefined, zone: string): string {
  if (iso === null || iso === undefined || iso === "") return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const parts: Record<string, string> = {};
  for (const part of formatter(zone).formatToParts(date)) parts[part.type] = part.value;
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
}

/** "4s ago", "3m ago", "2h ago", "5d ago" between two instants in milliseconds. */
export function ago(thenMs: number, nowMs: number): string {
  const seconds = Math.max(0, Math.floor((nowMs - thenMs) / 1000));
  if (seconds < 120) return `${seconds}s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h ago`;
  return `${Math.floor(hours / 24)}d ago`;
}
