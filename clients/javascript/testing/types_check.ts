// SPDX-License-Identifier: Apache-2.0
// Compiled (not run) to check doorman.d.ts: tsc --noEmit --strict testing/types_check.ts
import { DoormanClient, DoormanError, connect, closeAction, type Welcome, type StopInfo } from "../doorman.js";

async function tablet(url: string, key: string): Promise<void> {
  const doorman = new DoormanClient(url, key, { backoffMaxMs: 60_000, onStopped: (s: StopInfo) => console.log(s.message, s.code, s.reason) });
  const w: Welcome = await doorman.connect();
  const scopes: string[] = w.scopes;
  const off = doorman.on("expiryWarning", (m) => console.log(m.expiresAt));
  off();
  doorman.on("permissionsChanged", (m) => console.log(m.removedSubscriptions.length));
  await doorman.subscribe("door-events", (data, meta) => console.log(data, meta.channel), { property: "hotel-1" });
  try {
    const r = await doorman.call("pms:checkIn", { room: 101 }, { property: "hotel-1", timeoutMs: 5000 });
    const status: number = r.status;
    console.log(status, scopes);
  } catch (e) {
    if (e instanceof DoormanError && e.code === "rate_limited") console.log(e.retryAfterMs);
  }
  await doorman.publish("door-events", { door: 12 });
  await doorman.unsubscribe("door-events");
  const action: "stop" | "backoff" | "now" | "restart" = closeAction(4001);
  console.log(action, doorman.state, await doorman.ping());
  const c2 = await connect(url, key, { timeoutMs: 1000 });
  c2.close();
}
void tablet;
