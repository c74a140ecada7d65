import assert from "node:assert/strict";
import { test } from "node:test";

import { ago, formatTime, resolveZone } from "../src/time";

const AT = "2026-12-02T10:15:00+00:00";

test("resolveZone when Airflow stored a zone then that zone, else the browser's, else UTC", () => {
  assert.equal(resolveZone('"America/New_York"', "Europe/Paris"), "America/New_York");
  assert.equal(resolveZone(null, "Europe/Paris"), "Europe/Paris");
  assert.equal(resolveZone('"Not/AZone"', "Europe/Paris"), "Europe/Paris");
  assert.equal(resolveZone("not json", undefined), "UTC");
  assert.equal(resolveZone("42", "Bad/Zone"), "UTC");
});

test("formatTime when given a UTC time then it is shown in the zone, with the zone named", () => {
  assert.equal(formatTime(AT, "UTC"), "2026-12-02 10:15:00 UTC");
  assert.equal(formatTime(AT, "America/New_York"), "2026-12-02 05:15:00 EST");
  assert.equal(formatTime("2026-07-01T00:30:00+00:00", "America/New_York"), "2026-06-30 20:30:00 EDT");
});

test("formatTime when there is no time or no valid one then a dash or the text itself", () => {
  assert.equal(formatTime(null, "UTC"), "—");
  assert.equal(formatTime("", "UTC"), "—");
  assert.equal(formatTime("soon <b>", "UTC"), "soon <b>");
});

test("ago when time passes then seconds, minutes, hours, days", () => {
  const t = Date.UTC(2026, 11, 2);
  assert.equal(ago(t, t + 4_000), "4s ago");
  assert.equal(ago(t, t - 4_000), "0s ago");
  assert.equal(ago(t, t + 3 * 60_000), "3m ago");
  assert.equal(ago(t, t + 5 * 3_600_000), "5h ago");
  assert.equal(ago(t, t + 3 * 86_400_000), "3d ago");
});
