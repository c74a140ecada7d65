import assert from "node:assert/strict";
import { test } from "node:test";

import { errorDetail, SESSION_EXPIRED } from "../src/api";
import { sagaPalette, statePalette, stateLabel } from "../src/palette";

test("statePalette when the state is unknown then red and labelled unknown", () => {
  assert.equal(statePalette("ACTIVE", true), "green");
  assert.equal(statePalette("REDUCING", true), "orange");
  assert.equal(statePalette("HALTED", true), "red");
  assert.equal(statePalette("ACTIVE", false), "red");
  assert.equal(stateLabel("PAUSED", false), "unknown state: PAUSED");
  assert.equal(stateLabel("HALTED", true), "HALTED");
});

test("sagaPalette when a saga needs a person or failed then red", () => {
  assert.equal(sagaPalette("ok"), "green");
  assert.equal(sagaPalette("compensated"), "orange");
  assert.equal(sagaPalette("needs_human"), "red");
  assert.equal(sagaPalette("failed"), "red");
  assert.equal(sagaPalette("something new"), "red");
});

test("errorDetail when the session is gone then it says log in again, else the server's words", () => {
  assert.equal(errorDetail(401, { detail: "Not authenticated" }, "Unauthorized"), SESSION_EXPIRED);
  assert.equal(errorDetail(403, { detail: "Invalid JWT token" }, "Forbidden"), SESSION_EXPIRED);
  assert.equal(errorDetail(400, { detail: "reason too short" }, "Bad Request"), "reason too short");
  assert.equal(errorDetail(422, { detail: [{ msg: "field required" }, { msg: "bad" }] }, ""), "field required; bad");
  assert.equal(errorDetail(502, "<html>", "Bad Gateway"), "HTTP 502 Bad Gateway");
});
