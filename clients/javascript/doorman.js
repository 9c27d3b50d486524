// SPDX-License-Identifier: Apache-2.0
/**
 * Doorman client: one ES module, no dependencies, for browsers and Node (20 with
 * `--experimental-websocket`, 22+ as is, or any WHATWG-style WebSocket passed as `options.WebSocket`).
 *
 *     import { DoormanClient } from "./doorman.js";
 *     const doorman = new DoormanClient("wss://gw.example/ws", key, { onStopped: (s) => show(s.message) });
 *     await doorman.connect();
 *     await doorman.subscribe("door-events", (data) => render(data), { property: "hotel-1" });
 *
 * The key travels as the subprotocol pair ["doorman.v1", "doorman.key.<key>"] (browsers cannot set
 * headers); the server answers "doorman.v1". The client reconnects with exponential backoff and full
 * jitter, resubscribes after every reconnect, and stops for good on the 4000–4099 close codes.
 * @module doorman
 */

export const PROTOCOL = "doorman.v1";
export const KEY_PROTOCOL_PREFIX = "doorman.key.";

/** Close codes the server documents (README "Close codes"). */
export const CloseCodes = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  KEY_REVOKED: 4001,
  KEY_EXPIRED: 4003,
  KEY_ROTATED: 4004,
  KEY_DELETED: 4006,
  KEY_UNKNOWN: 4008,
  SLOW_CONSUMER: 4100,
  KEY_SUSPENDED: 4102,
  USER_DISABLED: 4105,
  KILLED: 4107,
  RATE_LIMITED: 4129,
});

/** The longest wait a server's retryAfterMs may ask for (one hour); longer hints are cut to it. */
const MAX_RETRY_AFTER_MS = 3_600_000;

/** What a device can show for each stop code when no notice message arrived (same words as the server's). */
const STOP_MESSAGES = {
  4001: ["key_revoked", "This device's key was revoked."],
  4003: ["key_expired", "This device's key has expired."],
  4004: ["key_rotated", "This device's key was replaced; it needs the new key."],
  4006: ["key_deleted", "This device's key was deleted."],
  4008: ["unknown_key", "This device's key is not known to the server."],
};

/**
 * A typed failure of a request: the server's `error` answer, or a client-side one.
 * `code` is the server's error (`forbidden`, `rate_limited`, `too_many_calls`, `upstream_status`,
 * `upstream_unavailable`, `upstream_timeout`, `unknown_service`, `invalid_request`, …) or one of the
 * client's: `timeout` (no answer within the request's timeout), `disconnected` (the connection
 * dropped while the request was in flight; a call may or may not have run), `stopped` (the client
 * stopped for good), `no_websocket`.
 */
export class DoormanError extends Error {
  /**
   * @param {string} code
   * @param {string} [message]
   * @param {Record<string, any>} [details] the server's error message as received
   */
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = "DoormanError";
    /** @type {string} */
    this.code = code;
    /** @type {string | undefined} */
    this.reason = details.reason;
    /** @type {number | undefined} milliseconds to wait before trying again (rate_limited, too_many_calls, upstream_unavailable) */
    this.retryAfterMs = typeof details.retryAfterMs === "number" ? details.retryAfterMs : undefined;
    /** @type {number | undefined} the upstream's HTTP status (upstream_status) */
    this.status = typeof details.status === "number" ? details.status : undefined;
    /** @type {any} the upstream's body (upstream_status) */
    this.body = details.body;
    /** @type {string | undefined} the rule that denied (forbidden, denied_by_rule) */
    this.rule = details.rule;
    /** @type {Record<string, any>} */
    this.details = details;
  }
}

/**
 * What the client does after a close code: "stop" (4000–4099), "backoff" (4100–4199 and anything
 * unknown or abnormal), "now" (4200–4299), "restart" (1001: the server is shutting down, come back
 * soon with a short jittered delay).
 * @param {number} code
 * @returns {"stop" | "backoff" | "now" | "restart"}
 */
export function closeAction(code) {
  if (code >= 4000 && code <= 4099) return "stop";
  if (code >= 4200 && code <= 4299) return "now";
  if (code === 1001) return "restart";
  return "backoff";
}

/**
 * Exponential backoff with full jitter: a uniform random delay in [0, min(maxMs, baseMs·2^attempt)).
 * @param {number} attempt 0 for the first retry
 * @param {number} baseMs
 * @param {number} maxMs
 * @param {() => number} [random]
 */
export function backoffDelay(attempt, baseMs, maxMs, random = Math.random) {
  const cap = Math.min(maxMs, baseMs * Math.pow(2, Math.min(attempt, 30)));
  return Math.floor(random() * cap);
}

/**
 * @typedef {Object} Welcome
 * @property {string} session
 * @property {{id: string, name: string}} user
 * @property {{id: string, name: string}} key
 * @property {string[]} scopes
 * @property {string[]} properties
 * @property {string[]} rules
 * @property {string | null} expiresAt RFC 3339, or null when the key does not expire
 */

/**
 * @typedef {Object} StopInfo
 * @property {number} code the close code (4001 for a revoked key; 1000 when the app called close())
 * @property {string} reason machine-readable (key_revoked, key_suspended, …, client_closed)
 * @property {string} message for people ("This device's key was revoked.")
 * @property {boolean} fromServer
 */

/**
 * @typedef {Object} ClientOptions
 * @property {any} [WebSocket] a WebSocket constructor (default globalThis.WebSocket)
 * @property {number} [backoffBaseMs] first retry waits up to this (default 1000)
 * @property {number} [backoffMaxMs] no retry waits longer (default 30000)
 * @property {number} [restartDelayMs] after close 1001 the first retry waits up to this (default 1000)
 * @property {number} [stableAfterMs] a session that lasted this long resets the backoff (default 10000)
 * @property {number} [connectTimeoutMs] handshake + welcome must arrive within this (default 10000)
 * @property {number} [requestTimeoutMs] default timeout of subscribe/unsubscribe/publish/ping (default 10000)
 * @property {number} [callTimeoutMs] default timeout of call (default 30000)
 * @property {number} [pingIntervalMs] ping the server this often to find dead connections; 0 = never (default 25000)
 * @property {boolean} [reconnectWhenOnline] browsers: retry at once when the page comes back online (default true)
 * @property {(w: Welcome) => void} [onWelcome]
 * @property {(s: StopInfo) => void} [onStopped]
 * @property {(d: {code: number, reason: string, action: string, delayMs: number | null}) => void} [onDisconnected]
 * @property {(r: {attempt: number, delayMs: number}) => void} [onReconnecting]
 * @property {(m: {expiresAt: string}) => void} [onExpiryWarning]
 * @property {(m: any) => void} [onPermissionsChanged]
 * @property {(m: any) => void} [onNotice]
 * @property {(e: any) => void} [onSubscriptionError]
 * @property {(e: any) => void} [onError]
 */

const DEFAULTS = {
  backoffBaseMs: 1000,
  backoffMaxMs: 30000,
  restartDelayMs: 1000,
  stableAfterMs: 10000,
  connectTimeoutMs: 10000,
  requestTimeoutMs: 10000,
  callTimeoutMs: 30000,
  pingIntervalMs: 25000,
  reconnectWhenOnline: true,
};

const EVENTS = ["welcome", "stopped", "disconnected", "reconnecting", "expiryWarning", "permissionsChanged", "notice", "subscriptionError", "error"];

/** @param {string} channel @param {string | undefined | null} property */
const subKey = (channel, property) => (property ?? "") + "\u0000" + channel;

/**
 * A Doorman session that survives restarts and network trouble, and stops for good when the key
 * may no longer be used.
 *
 * States: "idle" (before connect()), "connecting", "open" (welcome received), "waiting" (backing
 * off before the next attempt), "stopped" (for good; no further attempts).
 */
export class DoormanClient {
  /**
   * @param {string} url ws:// or wss:// URL of the gateway's /ws
   * @param {string} key the device's API key (never logged, never put in events)
   * @param {ClientOptions} [options]
   */
  constructor(url, key, options = {}) {
    if (typeof url !== "string" || !/^wss?:\/\//i.test(url)) throw new TypeError("url must be a ws:// or wss:// URL");
    if (typeof key !== "string" || !key) throw new TypeError("key must be a non-empty string");
    this.url = url;
    /** @private */ this._key = key;
    /** @private */ this._opts = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined && k in DEFAULTS) this._opts[k] = v;
    /** @private */ this._WS = options.WebSocket ?? globalThis.WebSocket;
    /** @type {"idle" | "connecting" | "open" | "waiting" | "stopped"} */
    this.state = "idle";
    /** @type {Welcome | null} the latest welcome, updated by permissions_changed */
    this.welcome = null;
    /** @type {StopInfo | null} */
    this.stopInfo = null;
    /** number of connection attempts made (handshakes started) */
    this.attempts = 0;
    /** @private */ this._listeners = new Map(EVENTS.map((e) => [e, new Set()]));
    /** @private */ this._subs = new Map();
    /** @private */ this._pending = new Map(); // id → {resolve, reject, timer}
    /** @private */ this._queue = []; // requests waiting for a connection
    /** @private */ this._nextId = 1;
    /** @private */ this._failures = 0;
    /** @private */ this._ws = null;
    /** @private */ this._conn = null; // per-attempt state
    /** @private */ this._retryTimer = null;
    /** @private */ this._connectWaiters = [];
    /** @private */ this._onOnline = () => { if (this.state === "waiting") { this._failures = 0; this._clearRetry(); this._open(); } };
    const map = { onWelcome: "welcome", onStopped: "stopped", onDisconnected: "disconnected", onReconnecting: "reconnecting",
      onExpiryWarning: "expiryWarning", onPermissionsChanged: "permissionsChanged", onNotice: "notice",
      onSubscriptionError: "subscriptionError", onError: "error" };
    for (const [opt, ev] of Object.entries(map)) if (typeof options[opt] === "function") this.on(ev, options[opt]);
  }

  /**
   * Listen to an event; returns a function that removes the listener.
   * @param {string} event one of welcome, stopped, disconnected, reconnecting, expiryWarning,
   *   permissionsChanged, notice, subscriptionError, error
   * @param {(payload: any) => void} fn
   * @returns {() => void}
   */
  on(event, fn) {
    const set = this._listeners.get(event);
    if (!set) throw new TypeError(`unknown event ${event}; one of ${EVENTS.join(", ")}`);
    set.add(fn);
    return () => set.delete(fn);
  }

  /** @param {string} event @param {(payload: any) => void} fn */
  off(event, fn) { this._listeners.get(event)?.delete(fn); }

  /**
   * Start (if not started) and wait for the first welcome. Rejects only when the client stops
   * before a welcome (e.g. the key is revoked) or with `timeoutMs` (default: wait as long as it takes).
   * @param {{timeoutMs?: number}} [opts]
   * @returns {Promise<Welcome>}
   */
  connect(opts = {}) {
    if (this.state === "stopped") return Promise.reject(this._stoppedError());
    if (this.state === "open" && this.welcome) return Promise.resolve(this.welcome);
    if (this.state === "idle" && !this._WS) {
      const e = new DoormanError("no_websocket", "No WebSocket: on Node 20 run node --experimental-websocket, or pass options.WebSocket");
      this._stop({ code: 1000, reason: "no_websocket", message: e.message, fromServer: false });
      return Promise.reject(e);
    }
    const p = new Promise((resolve, reject) => {
      const w = { resolve, reject, timer: null };
      if (opts.timeoutMs) w.timer = setTimeout(() => { this._connectWaiters = this._connectWaiters.filter((x) => x !== w); reject(new DoormanError("timeout", "no welcome within " + opts.timeoutMs + " ms")); }, opts.timeoutMs);
      this._connectWaiters.push(w);
    });
    if (this.state === "idle") {
      if (this._opts.reconnectWhenOnline && typeof globalThis.addEventListener === "function") globalThis.addEventListener("online", this._onOnline);
      this._open();
    }
    return p;
  }

  /** Stop for good (no further attempts); pending requests reject with `stopped`. */
  close() {
    if (this.state === "stopped") return;
    this._stop({ code: 1000, reason: "client_closed", message: "Closed by the application.", fromServer: false });
  }

  /**
   * Subscribe to a channel (within a property). The subscription is kept and renewed after every
   * reconnect until you unsubscribe or the server refuses it (then `subscriptionError`). The promise
   * settles with the first answer: it rejects with the server's error (e.g. forbidden, and the
   * subscription is dropped) or with `timeout` (the subscription stays and is retried on reconnect).
   * @param {string} channel
   * @param {(data: any, meta: {channel: string, property: string | null}) => void} handler
   * @param {{property?: string, timeoutMs?: number}} [opts]
   * @returns {Promise<void>}
   */
  subscribe(channel, handler, opts = {}) {
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    if (this.state === "stopped") return Promise.reject(this._stoppedError());
    const property = opts.property ?? null;
    const k = subKey(channel, property);
    let sub = this._subs.get(k);
    if (sub) {
      sub.handlers.add(handler);
      return sub.acked ? Promise.resolve() : sub.firstAnswer;
    }
    sub = { channel, property, handlers: new Set([handler]), acked: false, waiters: [] };
    sub.firstAnswer = new Promise((resolve, reject) => {
      const w = { resolve, reject, timer: null };
      const ms = opts.timeoutMs ?? this._opts.requestTimeoutMs;
      w.timer = setTimeout(() => {
        sub.waiters = sub.waiters.filter((x) => x !== w);
        reject(new DoormanError("timeout", `no answer to subscribe ${channel} within ${ms} ms`));
      }, ms);
      sub.waiters.push(w);
    });
    this._subs.set(k, sub);
    if (this.state === "open") this._sendSubscribe(sub);
    return sub.firstAnswer;
  }

  /**
   * Remove one handler (or all, without `handler`); the last one gone unsubscribes at the server.
   * @param {string} channel
   * @param {((data: any, meta: any) => void) | null} [handler]
   * @param {{property?: string, timeoutMs?: number}} [opts]
   * @returns {Promise<void>}
   */
  unsubscribe(channel, handler, opts = {}) {
    const property = opts.property ?? null;
    const k = subKey(channel, property);
    const sub = this._subs.get(k);
    if (!sub) return Promise.resolve();
    if (handler) sub.handlers.delete(handler);
    if (handler && sub.handlers.size > 0) return Promise.resolve();
    this._subs.delete(k);
    this._settleSub(sub, new DoormanError("unsubscribed", "unsubscribed before the server answered"));
    if (this.state !== "open") return Promise.resolve();
    return this._request({ type: "unsubscribe", channel, ...(property != null ? { property } : {}) }, opts.timeoutMs ?? this._opts.requestTimeoutMs, false).then(() => undefined);
  }

  /**
   * Publish on a channel (needs channel:publish.<channel>).
   * @param {string} channel
   * @param {any} data
   * @param {{property?: string, timeoutMs?: number}} [opts]
   * @returns {Promise<void>}
   */
  publish(channel, data, opts = {}) {
    const msg = { type: "publish", channel, data };
    if (opts.property != null) msg.property = opts.property;
    return this._request(msg, opts.timeoutMs ?? this._opts.requestTimeoutMs, true).then(() => undefined);
  }

  /**
   * Call an upstream service: `call("pms:checkIn", {room: 101}, {property: "hotel-1"})`. Resolves
   * with the upstream's 2xx answer; rejects with a DoormanError (forbidden, rate_limited with
   * retryAfterMs, upstream_status with status and body, upstream_unavailable, timeout, …).
   * @param {string} name "<service>:<api>"
   * @param {any} [body]
   * @param {{property?: string, timeoutMs?: number}} [opts]
   * @returns {Promise<{status: number, body: any, bodyEncoding?: string}>}
   */
  call(name, body, opts = {}) {
    const msg = { type: "call", call: name };
    if (body !== undefined) msg.body = body;
    if (opts.property != null) msg.property = opts.property;
    return this._request(msg, opts.timeoutMs ?? this._opts.callTimeoutMs, true).then((m) => {
      const r = { status: m.status, body: m.body };
      if (m.bodyEncoding) r.bodyEncoding = m.bodyEncoding;
      return r;
    });
  }

  /**
   * Round trip to the server; resolves with the milliseconds it took.
   * @param {{timeoutMs?: number}} [opts]
   * @returns {Promise<number>}
   */
  ping(opts = {}) {
    const t0 = Date.now();
    return this._request({ type: "ping" }, opts.timeoutMs ?? this._opts.requestTimeoutMs, true).then(() => Date.now() - t0);
  }

  /** The channels currently subscribed (or waiting to be), as {channel, property}. */
  get subscriptions() {
    return [...this._subs.values()].map((s) => ({ channel: s.channel, property: s.property, active: s.acked }));
  }

  // ---- internals ----------------------------------------------------------------------------

  /** @private */
  _emit(event, payload) {
    for (const fn of [...this._listeners.get(event)]) {
      try { fn(payload); } catch (e) { if (event !== "error") this._emit("error", e); else setTimeout(() => { throw e; }); }
    }
  }

  /** @private */
  _stoppedError() {
    const s = this.stopInfo;
    return new DoormanError("stopped", s ? s.message : "the client stopped", s ? { reason: s.reason, closeCode: s.code } : {});
  }

  /** @private */
  _open() {
    if (this.state === "stopped") return;
    this.state = "connecting";
    this.attempts += 1;
    let ws;
    try {
      ws = new this._WS(this.url, [PROTOCOL, KEY_PROTOCOL_PREFIX + this._key]);
    } catch (e) {
      this._emit("error", e);
      return this._schedule("backoff", { code: 1006, reason: "constructor_failed" });
    }
    const conn = { ws, opened: false, welcomed: false, openedAt: 0, notice: null, done: false, timer: null, pingTimer: null };
    this._ws = ws;
    this._conn = conn;
    conn.timer = setTimeout(() => this._drop(conn, 1006, "connect_timeout"), this._opts.connectTimeoutMs);
    ws.onopen = () => { if (!conn.done) conn.opened = true; };
    ws.onmessage = (ev) => { if (!conn.done) this._onMessage(conn, ev.data); };
    ws.onerror = () => {
      // Before the upgrade (a refused handshake, a network failure) browsers tell nothing more.
      if (!conn.done && !conn.opened) this._drop(conn, 1006, "handshake_failed");
    };
    ws.onclose = (ev) => { if (!conn.done) this._ended(conn, ev.code ?? 1006, ev.reason ?? ""); };
  }

  /** Close a connection from our side and treat it as ended abnormally. @private */
  _drop(conn, code, reason) {
    if (conn.done) return;
    const ws = conn.ws;
    this._ended(conn, code, reason); // detaches the handlers first: close() may fire error at once
    try { ws.close(1000, reason); } catch { /* already closing */ }
  }

  /** @private */
  _ended(conn, code, reason) {
    conn.done = true;
    clearTimeout(conn.timer);
    clearInterval(conn.pingTimer);
    conn.ws.onopen = conn.ws.onmessage = conn.ws.onerror = conn.ws.onclose = null;
    if (this._conn === conn) { this._conn = null; this._ws = null; }
    if (this.state === "stopped") return;
    for (const s of this._subs.values()) s.acked = false;
    this._failPending("disconnected", "the connection dropped before an answer");
    const notice = conn.notice;
    let action = closeAction(code);
    if (notice && notice.reconnect === false) action = "stop";
    if (action === "stop") {
      const known = STOP_MESSAGES[code] || [];
      this._stop({
        code: notice?.code ?? code,
        reason: notice?.reason || reason || known[0] || "stopped",
        message: notice?.message || known[1] || `The server ended this device's session (${code}).`,
        fromServer: true,
      });
      return;
    }
    if (conn.welcomed && Date.now() - conn.openedAt >= this._opts.stableAfterMs) this._failures = 0;
    if (!conn.welcomed && action !== "restart") action = "backoff"; // a failed attempt always backs off
    // A suspend, a disabled user or a kick (4102, 4105, 4107) says when to come back: that long
    // plus up to as much again, so a fleet does not return at once.
    const hinted = code >= 4100 && code <= 4199 && notice && notice.reconnect !== false && typeof notice.retryAfterMs === "number";
    const retryAfterMs = hinted ? Math.min(Math.max(0, notice.retryAfterMs), MAX_RETRY_AFTER_MS) : 0;
    this._schedule(action, { code, reason: notice?.reason || reason, retryAfterMs });
  }

  /** @private */
  _schedule(action, { code, reason, retryAfterMs = 0 }) {
    const o = this._opts;
    let delay;
    if (retryAfterMs > 0) delay = retryAfterMs + Math.floor(Math.random() * retryAfterMs);
    else if (action === "now" && this._failures === 0) delay = 0;
    else if (action === "restart" && this._failures === 0) delay = Math.floor(Math.random() * o.restartDelayMs);
    else delay = backoffDelay(this._failures, o.backoffBaseMs, o.backoffMaxMs);
    if (action !== "restart" || this._failures > 0) this._failures += 1;
    this.state = "waiting";
    this._emit("disconnected", { code, reason, action, delayMs: delay });
    this._emit("reconnecting", { attempt: this.attempts + 1, delayMs: delay });
    this._retryTimer = setTimeout(() => { this._retryTimer = null; this._open(); }, delay);
  }

  /** @private */
  _clearRetry() { if (this._retryTimer) { clearTimeout(this._retryTimer); this._retryTimer = null; } }

  /** @private */
  _stop(info) {
    if (this.state === "stopped") return;
    this.state = "stopped";
    this.stopInfo = info;
    this._clearRetry();
    if (typeof globalThis.removeEventListener === "function") globalThis.removeEventListener("online", this._onOnline);
    const conn = this._conn;
    if (conn) {
      conn.done = true;
      clearTimeout(conn.timer);
      clearInterval(conn.pingTimer);
      conn.ws.onopen = conn.ws.onmessage = conn.ws.onerror = conn.ws.onclose = null;
      try { conn.ws.close(1000, "client_closed"); } catch { /* closing */ }
      this._conn = null; this._ws = null;
    }
    const err = this._stoppedError();
    this._failPending("stopped", err.message, err.details);
    for (const q of this._queue.splice(0)) { clearTimeout(q.timer); q.reject(err); }
    for (const s of this._subs.values()) this._settleSub(s, err);
    for (const w of this._connectWaiters.splice(0)) { clearTimeout(w.timer); w.reject(err); }
    this._emit("stopped", info);
  }

  /** @private */
  _failPending(code, message, details) {
    for (const [id, p] of this._pending) {
      this._pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new DoormanError(code, message, details));
    }
  }

  /** @private */
  _onMessage(conn, raw) {
    let m;
    try { m = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw)); } catch { return this._emit("error", new Error("unparseable message from the server")); }
    if (!m || typeof m !== "object") return;
    switch (m.type) {
      case "welcome": return this._onWelcome(conn, m);
      case "result": case "error": {
        const p = this._pending.get(m.id);
        if (!p) return;
        this._pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.type === "result") p.resolve(m);
        else p.reject(new DoormanError(m.error || "error", m.message || m.error, m));
        return;
      }
      case "event": {
        const sub = this._subs.get(subKey(m.channel, m.property));
        if (!sub) return;
        const meta = { channel: m.channel, property: m.property ?? null };
        for (const h of [...sub.handlers]) { try { h(m.data, meta); } catch (e) { this._emit("error", e); } }
        return;
      }
      case "notice":
        conn.notice = m;
        return this._emit("notice", m);
      case "expiry_warning":
        return this._emit("expiryWarning", m);
      case "permissions_changed": {
        if (this.welcome) this.welcome = { ...this.welcome, scopes: m.scopes ?? this.welcome.scopes, properties: m.properties ?? this.welcome.properties, rules: m.rules ?? this.welcome.rules, expiresAt: m.expiresAt !== undefined ? m.expiresAt : this.welcome.expiresAt };
        for (const r of m.removedSubscriptions || []) {
          const k = subKey(r.channel, r.property);
          const sub = this._subs.get(k);
          if (sub) {
            this._subs.delete(k);
            const e = new DoormanError("forbidden", `subscription to ${r.channel} removed: the key's rights changed`, { reason: "permissions_changed" });
            this._settleSub(sub, e);
            this._emit("subscriptionError", { channel: r.channel, property: r.property ?? null, error: e });
          }
        }
        return this._emit("permissionsChanged", m);
      }
      default:
        return; // unknown pushes are ignored: newer servers may send more
    }
  }

  /** @private */
  _onWelcome(conn, m) {
    clearTimeout(conn.timer);
    conn.welcomed = true;
    conn.openedAt = Date.now();
    this.state = "open";
    const { type, ...w } = m;
    this.welcome = /** @type {Welcome} */ (w);
    if (this._opts.pingIntervalMs > 0) {
      conn.pingTimer = setInterval(() => {
        this._request({ type: "ping" }, Math.min(this._opts.requestTimeoutMs, this._opts.pingIntervalMs), false)
          .catch((e) => { if (e.code === "timeout" && !conn.done) this._drop(conn, 1006, "ping_timeout"); });
      }, this._opts.pingIntervalMs);
    }
    for (const sub of this._subs.values()) this._sendSubscribe(sub);
    for (const q of this._queue.splice(0)) this._transmit(q);
    for (const cw of this._connectWaiters.splice(0)) { clearTimeout(cw.timer); cw.resolve(this.welcome); }
    this._emit("welcome", this.welcome);
  }

  /** @private */
  _sendSubscribe(sub) {
    const msg = { type: "subscribe", channel: sub.channel };
    if (sub.property != null) msg.property = sub.property;
    this._request(msg, this._opts.requestTimeoutMs, false).then(
      () => {
        if (this._subs.get(subKey(sub.channel, sub.property)) !== sub) return;
        sub.acked = true;
        this._settleSub(sub, null);
      },
      (e) => {
        if (e.code === "disconnected" || e.code === "stopped") return; // renewed on the next welcome
        if (e.code === "timeout") { if (this._conn) this._drop(this._conn, 1006, "subscribe_timeout"); return; }
        if (this._subs.get(subKey(sub.channel, sub.property)) !== sub) return;
        this._subs.delete(subKey(sub.channel, sub.property));
        const hadWaiters = sub.waiters.length > 0;
        this._settleSub(sub, e);
        if (!hadWaiters) this._emit("subscriptionError", { channel: sub.channel, property: sub.property, error: e });
      });
  }

  /** @private */
  _settleSub(sub, err) {
    for (const w of sub.waiters.splice(0)) { clearTimeout(w.timer); err ? w.reject(err) : w.resolve(); }
  }

  /**
   * Send a request and wait for its answer. While not connected it waits in a queue (its timeout
   * runs from now) if `queueIfOffline`; once sent, a dropped connection rejects it (`disconnected`).
   * @private
   */
  _request(msg, timeoutMs, queueIfOffline) {
    if (this.state === "stopped") return Promise.reject(this._stoppedError());
    return new Promise((resolve, reject) => {
      const q = { msg, resolve, reject, timer: null, id: 0 };
      q.timer = setTimeout(() => {
        this._queue = this._queue.filter((x) => x !== q);
        if (q.id) this._pending.delete(q.id);
        reject(new DoormanError("timeout", `no answer to ${msg.type}${msg.call ? " " + msg.call : ""} within ${timeoutMs} ms`));
      }, timeoutMs);
      if (this.state === "open") this._transmit(q);
      else if (queueIfOffline) this._queue.push(q);
      else { clearTimeout(q.timer); reject(new DoormanError("disconnected", "not connected")); }
    });
  }

  /** @private */
  _transmit(q) {
    const id = this._nextId++;
    q.id = id;
    this._pending.set(id, { resolve: q.resolve, reject: q.reject, timer: q.timer });
    try {
      this._ws.send(JSON.stringify({ id, ...q.msg }));
    } catch (e) {
      this._pending.delete(id);
      clearTimeout(q.timer);
      q.reject(new DoormanError("disconnected", "could not send: " + (e && e.message)));
    }
  }
}

/**
 * Create a client and wait for its first welcome.
 * @param {string} url
 * @param {string} key
 * @param {ClientOptions & {timeoutMs?: number}} [options]
 * @returns {Promise<DoormanClient>}
 */
export async function connect(url, key, options = {}) {
  const client = new DoormanClient(url, key, options);
  await client.connect({ timeoutMs: options.timeoutMs });
  return client;
}

export default DoormanClient;
