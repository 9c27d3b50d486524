// SPDX-License-Identifier: Apache-2.0
// The scenario every client must pass, against the real gateway (clients/scenario/harness.py):
// connect, subscribe, receive a publish, call pms:checkIn, get throttled and recover, server restart
// → reconnect and resubscribe, key suspended → wait and come back after the resume, key revoked →
// stop with the reason and no further handshakes.
//   DOORMAN_BIN=/path/to/doorman node --experimental-websocket --test clients/javascript/test/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { DoormanClient, DoormanError } from "../doorman.js";
import { startHarness } from "../testing/harness.js";
import { sleep, until } from "../testing/fake_websocket.js";

let h, info, client;
const events = [], stops = [], disconnects = [], welcomes = [];

before(async () => {
  assert.equal(typeof globalThis.WebSocket, "function", "no global WebSocket: on Node 20 run node --experimental-websocket --test …");
  h = await startHarness();
  info = await h.info();
});

after(async () => {
  client?.close();
  await h?.stop();
});

test("connects with the key (subprotocol) and exposes the welcome", async () => {
  client = new DoormanClient(info.url, info.key, {
    backoffBaseMs: 250, backoffMaxMs: 2000, restartDelayMs: 300, pingIntervalMs: 5000,
    onStopped: (s) => stops.push(s), onDisconnected: (d) => disconnects.push(d), onWelcome: (w) => welcomes.push(w),
  });
  const w = await client.connect({ timeoutMs: 10000 });
  assert.equal(w.key.id, info.keyID);
  assert.equal(w.user.name, "scenario devices");
  assert.deepEqual(w.properties, [info.property]);
  assert.ok(w.scopes.includes("pms:*"));
  assert.deepEqual(w.rules, []);
  assert.equal(w.expiresAt, null);
  assert.ok(w.session);
  assert.equal(client.state, "open");
  assert.ok(await client.ping() >= 0);
});

test("subscribes and receives a publish", async () => {
  await client.subscribe(info.channel, (data, meta) => events.push({ data, meta }), { property: info.property });
  await h.publish({ door: 12, n: 1 });
  await until(() => events.length === 1, 5000, "the published event");
  assert.deepEqual(events[0], { data: { door: 12, n: 1 }, meta: { channel: info.channel, property: info.property } });
});

test("calls pms:checkIn: the upstream answers 200 with JSON", async () => {
  const r = await client.call(info.call, { room: 101 }, { property: info.property, timeoutMs: 5000 });
  assert.equal(r.status, 200);
  assert.equal(r.body.path, "/checkIn");
  assert.equal(r.body.user, welcomes[0].user.id);
  assert.equal(r.body.property, info.property);
  assert.deepEqual(JSON.parse(r.body.received), { room: 101 });
});

test("gets throttled (the 4th quick call: rate_limited with retryAfterMs) and recovers after the hint", async () => {
  // the key's bucket: a burst of 3, then 0.5/s; the call above took the first token
  const ok2 = await client.call(info.call, { n: 2 }, { property: info.property });
  const ok3 = await client.call(info.call, { n: 3 }, { property: info.property });
  assert.equal(ok2.status, 200);
  assert.equal(ok3.status, 200);
  const err = await client.call(info.call, { n: 4 }, { property: info.property }).then(() => null, (e) => e);
  assert.ok(err instanceof DoormanError && err instanceof Error, "the 4th call is refused with a DoormanError: " + err);
  assert.equal(err.code, "rate_limited");
  assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 2100, `retryAfterMs ${err.retryAfterMs}`);
  await sleep(err.retryAfterMs + 50);
  const r = await client.call(info.call, { after: "waiting" }, { property: info.property });
  assert.equal(r.status, 200);
});

test("server restart: reconnects and resubscribes; a publish after the restart reaches the handler", async () => {
  const sessionBefore = client.welcome.session;
  const n = welcomes.length;
  const seen = disconnects.length;
  await h.restart();
  await until(() => welcomes.length > n && client.state === "open", 15000, "the reconnect");
  // The drain's 1001 comes first; a reconnect tried while the server is still down may add a
  // refused handshake after it (backed off), which is right too.
  const sinceRestart = disconnects.slice(seen);
  assert.equal(sinceRestart[0]?.code, 1001, JSON.stringify(disconnects));
  assert.equal(sinceRestart[0]?.action, "restart");
  assert.ok(sinceRestart.slice(1).every((d) => d.code === 1006 && d.action === "backoff"), JSON.stringify(sinceRestart));
  await until(() => client.subscriptions.every((s) => s.active), 5000, "the resubscribe");
  const before = events.length;
  await h.publish({ door: 12, n: 2, after: "restart" });
  await until(() => events.length > before, 5000, "the event after the restart");
  assert.deepEqual(events.at(-1).data, { door: 12, n: 2, after: "restart" });
  assert.ok(client.welcome.session !== sessionBefore || welcomes.length > n);
});

test("key suspended: the device waits as told, keeps trying slowly, and is back by itself after the resume", async () => {
  const n = welcomes.length;
  const seen = disconnects.length;
  await h.suspend();
  await until(() => disconnects.length > seen, 5000, "the suspension's close");
  const closed = disconnects[seen];
  assert.equal(closed.code, 4102, JSON.stringify(closed));
  assert.equal(closed.reason, "key_suspended");
  assert.ok(closed.delayMs >= 1000 && closed.delayMs < 2000, `waits the server's 1 s plus jitter: ${closed.delayMs}`);
  assert.equal(client.state, "waiting");
  assert.equal(stops.length, 0, "a suspension is not a stop");
  // While suspended, each try is upgraded and told 4102 again (a browser cannot read a 401).
  await until(() => disconnects.length > seen + 1, 5000, "a try while suspended");
  assert.equal(disconnects[seen + 1].code, 4102, JSON.stringify(disconnects.slice(seen)));
  await h.resume();
  await until(() => welcomes.length > n && client.state === "open", 5000, "the device back after the resume");
  await until(() => client.subscriptions.every((s) => s.active), 5000, "the resubscribe");
});

test("key revoked: stops with the reason and makes no further connection attempts", async () => {
  const attempts = client.attempts;
  await h.revoke();
  await until(() => stops.length === 1, 5000, "the stop");
  assert.deepEqual(stops[0], { code: 4001, reason: "key_revoked", message: "This device's key was revoked.", fromServer: true });
  assert.equal(client.state, "stopped");
  const t0 = (await h.handshakes()).total;
  await sleep(3000);
  const t1 = (await h.handshakes()).total;
  assert.equal(t1, t0, `handshakes grew from ${t0} to ${t1} after the stop`);
  assert.equal(client.attempts, attempts, "no new attempts");
  await assert.rejects(client.call(info.call, {}), (e) => e.code === "stopped");
});

test("a device whose key was revoked while it was away learns why and stops after one attempt", async () => {
  const away = new DoormanClient(info.url, info.key, { backoffBaseMs: 200, backoffMaxMs: 800, pingIntervalMs: 0 });
  const stopped = [];
  away.on("stopped", (s) => stopped.push(s));
  const before = (await h.handshakes()).total;
  await assert.rejects(away.connect({ timeoutMs: 5000 }), (e) => e.code === "stopped");
  assert.deepEqual(stopped, [{ code: 4001, reason: "key_revoked", message: "This device's key was revoked.", fromServer: true }]);
  assert.equal(away.attempts, 1);
  await sleep(1000);
  assert.equal((await h.handshakes()).total, before + 1, "one handshake, then nothing");
  away.close();
});
