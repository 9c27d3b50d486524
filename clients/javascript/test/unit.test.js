// SPDX-License-Identifier: Apache-2.0
// The client's policy against a scripted WebSocket (no server): close-code ranges, backoff, resubscribe,
// typed errors, timeouts, pushes. Run: node --experimental-websocket --test clients/javascript/test/
import { test } from "node:test";
import assert from "node:assert/strict";
import { DoormanClient, DoormanError, closeAction, backoffDelay } from "../doorman.js";
import { fakeWebSocketClass, sleep, until } from "../testing/fake_websocket.js";

const URL = "ws://127.0.0.1:1/ws";
const KEY = "dmk_testkey";
const fast = { backoffBaseMs: 40, backoffMaxMs: 200, restartDelayMs: 30, pingIntervalMs: 0, requestTimeoutMs: 300, callTimeoutMs: 300, connectTimeoutMs: 500 };

function setup(options = {}) {
  const WS = fakeWebSocketClass();
  const client = new DoormanClient(URL, KEY, { WebSocket: WS, ...fast, ...options });
  return { WS, client };
}

test("closeAction follows the documented ranges", () => {
  for (const c of [4000, 4001, 4003, 4004, 4006, 4008, 4099]) assert.equal(closeAction(c), "stop", String(c));
  for (const c of [4102, 4105, 4107]) assert.equal(closeAction(c), "backoff", String(c));
  for (const c of [4100, 4129, 4199]) assert.equal(closeAction(c), "backoff", String(c));
  for (const c of [4200, 4250, 4299]) assert.equal(closeAction(c), "now", String(c));
  assert.equal(closeAction(1001), "restart");
  for (const c of [1000, 1002, 1006, 1011, 4300, 4999]) assert.equal(closeAction(c), "backoff", String(c));
});

test("backoffDelay is full jitter under an exponential cap", () => {
  assert.equal(backoffDelay(0, 1000, 30000, () => 0), 0);
  assert.equal(backoffDelay(0, 1000, 30000, () => 0.999999), 999);
  assert.equal(backoffDelay(3, 1000, 30000, () => 0.5), 4000);
  assert.equal(backoffDelay(10, 1000, 30000, () => 0.5), 15000);
  assert.equal(backoffDelay(1000, 1000, 30000, () => 0.999999), 29999);
  for (let i = 0; i < 1000; i++) { const d = backoffDelay(i % 8, 100, 5000); assert.ok(d >= 0 && d < Math.min(5000, 100 * 2 ** (i % 8))); }
});

test("connects with the subprotocol pair and exposes the welcome", async () => {
  const { WS, client } = setup();
  const p = client.connect();
  assert.equal(WS.instances.length, 1);
  assert.deepEqual(WS.instances[0].protocols, ["doorman.v1", "doorman.key." + KEY]);
  WS.instances[0].accept({ expiresAt: "2030-01-01T00:00:00Z" });
  const w = await p;
  assert.equal(w.user.name, "Door panels");
  assert.deepEqual(w.scopes, ["channel:*"]);
  assert.equal(w.expiresAt, "2030-01-01T00:00:00Z");
  assert.equal(client.state, "open");
  assert.equal(client.welcome, w);
  client.close();
});

test("without a WebSocket constructor connect() says how to get one", async () => {
  const client = new DoormanClient(URL, KEY, { WebSocket: null });
  client._WS = undefined;
  await assert.rejects(client.connect(), (e) => e instanceof DoormanError && e.code === "no_websocket" && /experimental-websocket/.test(e.message));
  assert.equal(client.state, "stopped");
});

test("calls resolve with the upstream's answer and reject with typed errors", async () => {
  const { WS, client } = setup();
  const c = client.connect(); WS.instances[0].accept(); await c;
  const ws = WS.instances[0];
  const ok = client.call("pms:checkIn", { room: 101 }, { property: "hotel-1" });
  const sent = ws.lastSent("call");
  assert.deepEqual({ ...sent, id: 0 }, { id: 0, type: "call", call: "pms:checkIn", body: { room: 101 }, property: "hotel-1" });
  ws.push({ type: "result", id: sent.id, status: 200, body: { ok: true } });
  assert.deepEqual(await ok, { status: 200, body: { ok: true } });

  const limited = client.call("pms:checkIn", {}, { property: "hotel-1" });
  ws.push({ type: "error", id: ws.lastSent("call").id, error: "rate_limited", message: "too many calls", retryAfterMs: 1998 });
  await assert.rejects(limited, (e) => e instanceof DoormanError && e instanceof Error && e.code === "rate_limited" && e.retryAfterMs === 1998 && e.message === "too many calls");

  const denied = client.call("pms:checkOut", {});
  ws.push({ type: "error", id: ws.lastSent("call").id, error: "forbidden", reason: "denied_by_rule", rule: "!pms:checkOut*", message: "no" });
  await assert.rejects(denied, (e) => e.code === "forbidden" && e.reason === "denied_by_rule" && e.rule === "!pms:checkOut*");

  const upstream = client.call("pms:x", {});
  ws.push({ type: "error", id: ws.lastSent("call").id, error: "upstream_status", status: 409, body: { why: "occupied" }, message: "upstream answered 409" });
  await assert.rejects(upstream, (e) => e.code === "upstream_status" && e.status === 409 && e.body.why === "occupied");

  const t0 = Date.now();
  await assert.rejects(client.call("pms:slow", {}, { timeoutMs: 80 }), (e) => e.code === "timeout");
  assert.ok(Date.now() - t0 >= 75);
  await assert.rejects(client.publish("door-events", {}, { timeoutMs: 50 }), (e) => e.code === "timeout");
  client.close();
  await assert.rejects(client.call("pms:checkIn", {}), (e) => e.code === "stopped");
});

test("events reach the handlers of their channel and property; unsubscribe stops them", async () => {
  const { WS, client } = setup();
  const c = client.connect(); WS.instances[0].accept(); await c;
  const ws = WS.instances[0];
  const got = [];
  await client.subscribe("door-events", (d, meta) => got.push([d, meta]), { property: "hotel-1" });
  assert.deepEqual({ ...ws.lastSent("subscribe"), id: 0 }, { id: 0, type: "subscribe", channel: "door-events", property: "hotel-1" });
  ws.push({ type: "event", channel: "door-events", property: "hotel-1", data: { door: 12 } });
  ws.push({ type: "event", channel: "door-events", property: "hotel-2", data: { door: 99 } });
  assert.deepEqual(got, [[{ door: 12 }, { channel: "door-events", property: "hotel-1" }]]);
  await client.unsubscribe("door-events", null, { property: "hotel-1" });
  assert.equal(ws.lastSent("unsubscribe").channel, "door-events");
  ws.push({ type: "event", channel: "door-events", property: "hotel-1", data: { door: 13 } });
  assert.equal(got.length, 1);
  client.close();
});

test("a refused subscribe rejects with the server's error and is not renewed", async () => {
  const { WS, client } = setup();
  WS.auto = false;
  const c = client.connect(); WS.instances[0].accept(); await c;
  const ws = WS.instances[0];
  const p = client.subscribe("billing", () => {}, { property: "hotel-1" });
  ws.push({ type: "error", id: ws.lastSent("subscribe").id, error: "forbidden", reason: "not_permitted_for_user", message: "no" });
  await assert.rejects(p, (e) => e.code === "forbidden" && e.reason === "not_permitted_for_user");
  assert.equal(client.subscriptions.length, 0);
  client.close();
});

test("4001 with its notice: stopped with the reason, pending requests fail, no further attempts", async () => {
  const { WS, client } = setup();
  const stops = [];
  client.on("stopped", (s) => stops.push(s));
  const c = client.connect(); WS.instances[0].accept(); await c;
  await client.subscribe("door-events", () => {}, { property: "hotel-1" });
  const pending = client.call("pms:checkIn", {});
  WS.instances[0].push({ type: "notice", reason: "key_revoked", code: 4001, reconnect: false, message: "This device's key was revoked." });
  WS.instances[0].serverClose(4001, "key_revoked");
  await assert.rejects(pending, (e) => e.code === "disconnected" || e.code === "stopped");
  assert.deepEqual(stops, [{ code: 4001, reason: "key_revoked", message: "This device's key was revoked.", fromServer: true }]);
  assert.equal(client.state, "stopped");
  assert.deepEqual(client.stopInfo, stops[0]);
  await sleep(400);
  assert.equal(WS.instances.length, 1, "no reconnect after a stop");
  await assert.rejects(client.connect(), (e) => e.code === "stopped" && e.message === "This device's key was revoked.");
  await assert.rejects(client.subscribe("x", () => {}), (e) => e.code === "stopped");
});

test("every 4000-4099 code stops, even without a notice, with the documented message", async () => {
  for (const [code, reason, text] of [[4003, "key_expired", "expired"], [4004, "key_rotated", "new key"],
    [4006, "key_deleted", "deleted"], [4008, "unknown_key", "not known"], [4050, "", ""]]) {
    const { WS, client } = setup();
    let stop = null;
    client.on("stopped", (s) => { stop = s; });
    const c = client.connect(); WS.instances[0].accept(); await c;
    WS.instances[0].serverClose(code, reason);
    assert.equal(stop.code, code);
    if (reason) assert.equal(stop.reason, reason);
    assert.ok(stop.message.includes(text), stop.message);
    await sleep(60);
    assert.equal(WS.instances.length, 1, `no reconnect after ${code}`);
  }
});

test("a suspend, a disabled user or a kick (41xx) waits the notice's retryAfterMs plus jitter, then comes back", async () => {
  for (const [code, reason] of [[4102, "key_suspended"], [4105, "user_disabled"], [4107, "killed_by_administrator"]]) {
    const { WS, client } = setup();
    const seen = [];
    client.on("disconnected", (d) => seen.push(d));
    const c = client.connect(); WS.instances[0].accept(); await c;
    WS.instances[0].push({ type: "notice", reason, code, reconnect: true, retryAfterMs: 120, message: "…" });
    WS.instances[0].serverClose(code, reason);
    assert.equal(client.state, "waiting", `${code} does not stop`);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].reason, reason);
    assert.ok(seen[0].delayMs >= 120 && seen[0].delayMs < 240, `${code}: ${seen[0].delayMs} ms`);
    await sleep(300);
    assert.equal(WS.instances.length, 2, `${code}: back after the hint`);
    WS.instances[1].accept();
    client.close();
  }
});

test("a notice with reconnect:false stops even on an unexpected close code", async () => {
  const { WS, client } = setup();
  const c = client.connect(); WS.instances[0].accept(); await c;
  WS.instances[0].push({ type: "notice", reason: "key_revoked", code: 4001, reconnect: false, message: "This device's key was revoked." });
  WS.instances[0].serverClose(1006);
  assert.equal(client.state, "stopped");
  assert.equal(client.stopInfo.reason, "key_revoked");
});

test("4100-4199 back off, reconnect and resubscribe; events reach the old handler", async () => {
  const { WS, client } = setup();
  const disc = [];
  client.on("disconnected", (d) => disc.push(d));
  const c = client.connect(); WS.instances[0].accept(); await c;
  const got = [];
  await client.subscribe("door-events", (d) => got.push(d), { property: "hotel-1" });
  WS.instances[0].push({ type: "notice", reason: "rate_limited", code: 4129, reconnect: true, message: "Too many messages; reconnect later." });
  WS.instances[0].serverClose(4129, "rate_limited");
  assert.equal(client.state, "waiting");
  assert.equal(disc[0].action, "backoff");
  assert.ok(disc[0].delayMs >= 0 && disc[0].delayMs < 40);
  await until(() => WS.instances.length === 2, 1000, "reconnect");
  WS.instances[1].accept();
  await until(() => WS.instances[1].lastSent("subscribe"), 1000, "resubscribe");
  assert.equal(WS.instances[1].lastSent("subscribe").channel, "door-events");
  await until(() => client.subscriptions[0].active);
  WS.instances[1].push({ type: "event", channel: "door-events", property: "hotel-1", data: 7 });
  assert.deepEqual(got, [7]);
  client.close();
});

test("4200-4299 reconnect at once; 1001 reconnects within the short restart delay", async () => {
  const { WS, client } = setup({ backoffBaseMs: 5000, backoffMaxMs: 5000 });
  const disc = [];
  client.on("disconnected", (d) => disc.push(d));
  const c = client.connect(); WS.instances[0].accept(); await c;
  WS.instances[0].serverClose(4200, "reconnect_now");
  assert.equal(disc[0].action, "now");
  assert.equal(disc[0].delayMs, 0);
  await until(() => WS.instances.length === 2, 200, "immediate reconnect");
  WS.instances[1].accept();
  await until(() => client.state === "open");
  // a session restored well: the next 1001 is a restart, come back quickly
  client._failures = 0;
  WS.instances[1].serverClose(1001, "server shutting down");
  assert.equal(disc[1].action, "restart");
  assert.ok(disc[1].delayMs < 30, `restart delay ${disc[1].delayMs}`);
  await until(() => WS.instances.length === 3, 300, "prompt reconnect after 1001");
  client.close();
});

test("refused handshakes back off exponentially (full jitter, capped) and keep trying", async () => {
  const { WS, client } = setup({ backoffBaseMs: 20, backoffMaxMs: 80 });
  const delays = [];
  client.on("disconnected", (d) => delays.push(d));
  client.connect().catch(() => {});
  for (let i = 0; i < 6; i++) {
    await until(() => WS.instances.length === i + 1, 1000, `attempt ${i + 1}`);
    WS.instances[i].refuse(); // the browser's view of a 401: error, then close 1006 before any open
  }
  assert.equal(delays.length, 6, "one disconnect per refused handshake (error and close counted once)");
  delays.forEach((d, i) => {
    assert.equal(d.reason, "handshake_failed");
    assert.equal(d.action, "backoff");
    assert.ok(d.delayMs < Math.min(80, 20 * 2 ** i), `attempt ${i}: ${d.delayMs}`);
  });
  await until(() => WS.instances.length === 7, 1000, "still trying");
  WS.instances[6].accept();
  await until(() => client.state === "open");
  client.close();
  await sleep(150);
  assert.equal(WS.instances.length, 7);
});

test("a handshake that hangs, or a server that stops answering pings, is dropped and retried", async () => {
  const { WS, client } = setup({ connectTimeoutMs: 50, pingIntervalMs: 60, requestTimeoutMs: 40 });
  client.connect().catch(() => {});
  await until(() => WS.instances.length === 2, 1000, "retry after connect timeout");
  assert.equal(WS.instances[0].closed.byClient, true);
  WS.instances[1].accept();
  await until(() => client.state === "open");
  WS.auto = false; // pings go unanswered
  await until(() => WS.instances.length === 3, 1000, "retry after ping timeout");
  assert.equal(WS.instances[1].closed.reason, "ping_timeout");
  client.close();
});

test("requests made while offline wait for the connection (within their timeout)", async () => {
  const { WS, client } = setup();
  client.connect();
  const p = client.publish("door-events", { n: 1 }, { property: "hotel-1", timeoutMs: 500 });
  const lost = client.call("pms:checkIn", {}, { timeoutMs: 30 });
  await assert.rejects(lost, (e) => e.code === "timeout");
  WS.instances[0].accept();
  await until(() => WS.instances[0].lastSent("publish"));
  const sent = WS.instances[0].lastSent("publish");
  assert.equal(WS.instances[0].sent.filter((m) => m.type === "call").length, 0, "a timed-out request is not sent later");
  WS.instances[0].push({ type: "result", id: sent.id });
  await p;
  client.close();
});

test("expiry_warning and permissions_changed are surfaced; removed subscriptions are dropped", async () => {
  const { WS, client } = setup();
  const warnings = [], changes = [], lost = [];
  client.on("expiryWarning", (m) => warnings.push(m));
  client.on("permissionsChanged", (m) => changes.push(m));
  client.on("subscriptionError", (m) => lost.push(m));
  const c = client.connect(); WS.instances[0].accept(); await c;
  await client.subscribe("door-events", () => {}, { property: "hotel-1" });
  WS.instances[0].push({ type: "expiry_warning", expiresAt: "2030-01-01T00:00:00Z" });
  WS.instances[0].push({ type: "permissions_changed", scopes: ["channel:subscribe.other"], properties: ["hotel-1"], rules: [], expiresAt: null,
    removedSubscriptions: [{ channel: "door-events", property: "hotel-1" }] });
  assert.deepEqual(warnings, [{ type: "expiry_warning", expiresAt: "2030-01-01T00:00:00Z" }]);
  assert.equal(changes.length, 1);
  assert.deepEqual(client.welcome.scopes, ["channel:subscribe.other"]);
  assert.equal(lost.length, 1);
  assert.equal(lost[0].error.code, "forbidden");
  assert.equal(client.subscriptions.length, 0);
  client.close();
});

test("close() by the app stops for good", async () => {
  const { WS, client } = setup();
  let stop;
  client.on("stopped", (s) => { stop = s; });
  const c = client.connect(); WS.instances[0].accept(); await c;
  client.close();
  assert.equal(WS.instances[0].closed.code, 1000);
  assert.deepEqual(stop, { code: 1000, reason: "client_closed", message: "Closed by the application.", fromServer: false });
  await sleep(100);
  assert.equal(WS.instances.length, 1);
});
