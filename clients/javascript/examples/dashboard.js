// SPDX-License-Identifier: Apache-2.0
// A small dashboard on the Doorman client: connect with a key, subscribe, show events, call an
// upstream, and show why when the key's session is ended for good.
import { DoormanClient } from "../doorman.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.hash.slice(1));

function item(list, text, cls) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (cls) li.className = cls;
  $(list).prepend(li);
  return li;
}

function setStatus(state, detail = "") {
  $("status").dataset.state = state;
  $("status").textContent = detail ? `${state} (${detail})` : state;
}

function start(cfg) {
  const num = (name) => (params.has(name) ? Number(params.get(name)) : undefined);
  const doorman = new DoormanClient(cfg.url, cfg.key, {
    backoffBaseMs: num("backoffBaseMs"), backoffMaxMs: num("backoffMaxMs"), restartDelayMs: num("restartDelayMs"),
    onWelcome: (w) => {
      setStatus("open");
      $("session-info").hidden = false;
      $("session").textContent = w.session;
      $("user").textContent = w.user.name;
      $("key-name").textContent = w.key.name;
      $("properties").textContent = w.properties.join(", ");
      $("expires").textContent = w.expiresAt ?? "never";
      $("connections").textContent = String(Number($("connections").textContent) + 1);
      $("call").disabled = false;
    },
    onDisconnected: (d) => {
      setStatus("waiting", `closed ${d.code}, retry in ${d.delayMs} ms`);
      $("status").dataset.lastClose = String(d.code);
      // Every close in order (a restart shows its 1001, then any refused attempts while it was down).
      const closes = JSON.parse($("status").dataset.closes ?? "[]");
      $("status").dataset.closes = JSON.stringify([...closes, { code: d.code, reason: d.reason }]);
      $("subscription").textContent = "reconnecting…";
      $("call").disabled = true;
    },
    onReconnecting: () => {},
    onExpiryWarning: (m) => { $("warning").hidden = false; $("warning").textContent = `This device's key expires at ${m.expiresAt}.`; },
    onPermissionsChanged: (m) => item("events", `rights changed: ${JSON.stringify(m.scopes)}`),
    onSubscriptionError: (e) => { $("subscription").textContent = `lost: ${e.error.message}`; },
    onStopped: (s) => {
      setStatus("stopped");
      $("call").disabled = true;
      $("subscription").textContent = "stopped";
      $("stop-message").textContent = s.message;
      $("stop-code").textContent = String(s.code);
      $("stop-reason").textContent = s.reason;
      $("stopped").hidden = false;
    },
  });
  window.doorman = doorman; // for the browser test and the console
  setStatus("connecting");
  $("channel").textContent = cfg.channel;
  $("call-name").textContent = cfg.call;
  const opts = cfg.property ? { property: cfg.property } : {};

  doorman.connect().catch(() => {}); // the stop banner says why
  doorman.subscribe(cfg.channel, (data, meta) => {
    const li = item("events", JSON.stringify(data));
    li.dataset.event = JSON.stringify(data);
    li.dataset.property = meta.property ?? "";
  }, opts).then(
    () => { $("subscription").textContent = "subscribed"; },
    (e) => { $("subscription").textContent = `not subscribed: ${e.code}`; });
  doorman.on("welcome", () => {
    // resubscribed by the client itself; say so once the server confirmed
    setTimeout(() => { if (doorman.subscriptions.every((s) => s.active)) $("subscription").textContent = "subscribed"; }, 300);
  });

  $("call").addEventListener("click", async () => {
    const li = item("calls", "…");
    try {
      const r = await doorman.call(cfg.call, { room: 101, at: new Date().toISOString() }, opts);
      li.dataset.result = "ok";
      li.dataset.status = String(r.status);
      li.textContent = `${r.status} ${JSON.stringify(r.body).slice(0, 160)}`;
    } catch (e) {
      li.dataset.result = e.code;
      if (e.retryAfterMs !== undefined) li.dataset.retryAfterMs = String(e.retryAfterMs);
      li.className = "error";
      li.textContent = `${e.code}${e.retryAfterMs !== undefined ? ` (retry in ${e.retryAfterMs} ms)` : ""}: ${e.message}`;
    }
  });
}

const fromHash = { url: params.get("url"), key: params.get("key"), channel: params.get("channel") || "door-events",
  property: params.get("property") || "", call: params.get("call") || "pms:checkIn" };
if (fromHash.url && fromHash.key) {
  history.replaceState(null, "", location.pathname); // do not leave the key in the address bar
  start(fromHash);
} else {
  const form = $("setup");
  form.hidden = false;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    form.hidden = true;
    start({ url: f.get("url"), key: f.get("key"), channel: f.get("channel"), property: f.get("property"), call: "pms:checkIn" });
  });
}
