import assert from "node:assert/strict";
import { test } from "node:test";

import { deskLink, loginLink, requiredActionsLink, runLink, sagaTabLink, taskLink, withQuery } from "../src/links";

const RUN = "manual__2026-12-02T10:15:00+00:00";

test("runLink when the run id holds ':' and '+' then each segment is encoded and relative", () => {
  assert.equal(runLink("saga_drill", RUN), "dags/saga_drill/runs/manual__2026-12-02T10%3A15%3A00%2B00%3A00");
});

test("links when an id is hostile then it stays inside its own path segment", () => {
  assert.equal(runLink("../../x", "a/b?c#d"), "dags/..%2F..%2Fx/runs/a%2Fb%3Fc%23d");
  assert.equal(taskLink("d", "r", "<img src=x>"), "dags/d/runs/r/tasks/%3Cimg%20src%3Dx%3E");
});

test("taskLink when mapped then the map index has its own page, else the task's", () => {
  assert.equal(taskLink("d", "r", "hedge", 2), "dags/d/runs/r/tasks/hedge/mapped/2");
  assert.equal(taskLink("d", "r", "hedge", -1), "dags/d/runs/r/tasks/hedge");
  assert.equal(taskLink("d", "r", "hedge"), "dags/d/runs/r/tasks/hedge");
});

test("sagaTabLink when built then it opens the run's Saga tab", () => {
  assert.equal(sagaTabLink("d", "r"), "dags/d/runs/r/plugin/tradeops-saga");
  assert.equal(deskLink(), "plugin/tradeops-desk");
  assert.equal(requiredActionsLink(), "required_actions");
});

test("loginLink when built then Airflow's login comes back to the page", () => {
  assert.equal(loginLink("http://h/plugin/tradeops-desk"), "api/v2/auth/login?next=http%3A%2F%2Fh%2Fplugin%2Ftradeops-desk");
});

test("withQuery when values are empty then they are left out, else encoded", () => {
  assert.equal(withQuery("dead-letters", { topic: "", q: "", limit: 50 }), "dead-letters?limit=50");
  assert.equal(withQuery("dead-letters", { topic: "risk-alerts", q: "a&b=c", limit: 50 }), "dead-letters?topic=risk-alerts&q=a%26b%3Dc&limit=50");
  assert.equal(withQuery("saga", { dag_id: undefined }), "saga");
});
