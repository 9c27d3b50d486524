// SPDX-License-Identifier: Apache-2.0
// A scripted stand-in for the WebSocket constructor (WHATWG shape), for the unit tests: each
// instance records what the client sent; the test plays the server.
export function fakeWebSocketClass() {
  class FakeWebSocket {
    static instances = [];
    static auto = true; // answer subscribe/unsubscribe/ping at once
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = [];
      this.closed = null;
      this.protocol = "";
      this.onopen = this.onmessage = this.onerror = this.onclose = null;
      FakeWebSocket.instances.push(this);
    }
    send(text) {
      if (this.closed) throw new Error("closed");
      const m = JSON.parse(text);
      this.sent.push(m);
      if (FakeWebSocket.auto && ["subscribe", "unsubscribe"].includes(m.type)) queueMicrotask(() => this.push({ type: "result", id: m.id }));
      if (FakeWebSocket.auto && m.type === "ping") queueMicrotask(() => this.push({ type: "result", id: m.id, pong: true }));
    }
    close(code, reason) {
      const connecting = !this.opened && !this.closed;
      this.closed = { code, reason, byClient: true };
      if (connecting) this.onerror?.({}); // as Node's (undici) WebSocket does: at once, inside close()
    }
    // --- the server's side ---
    accept(welcome = {}) {
      this.opened = true;
      this.protocol = "doorman.v1";
      this.onopen?.({});
      this.push({ type: "welcome", session: String(FakeWebSocket.instances.length), user: { id: "usr_1", name: "Door panels" },
        key: { id: "key_1", name: "door 12" }, scopes: ["channel:*"], properties: ["hotel-1"], rules: [], expiresAt: null, ...welcome });
    }
    push(obj) { if (!this.closed || !this.closed.byClient) this.onmessage?.({ data: JSON.stringify(obj) }); }
    serverClose(code, reason = "") { this.closed = { code, reason, byClient: false }; this.onclose?.({ code, reason, wasClean: true }); }
    refuse() { this.closed = { code: 1006, byClient: false }; this.onerror?.({}); this.onclose?.({ code: 1006, reason: "", wasClean: false }); }
    lastSent(type) { return [...this.sent].reverse().find((m) => m.type === type); }
  }
  return FakeWebSocket;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(cond, timeoutMs = 2000, what = "condition") {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
