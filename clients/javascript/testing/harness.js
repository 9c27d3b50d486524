// SPDX-License-Identifier: Apache-2.0
// Starts the shared scenario harness (clients/scenario/harness.py: the real gateway binary and the
// reference upstream) and talks to its control API. The binary: $DOORMAN_BIN, default .build/release/doorman.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const HARNESS = path.join(ROOT, "clients/scenario/harness.py");
export const DOORMAN_BIN = process.env.DOORMAN_BIN || path.join(ROOT, ".build/release/doorman");

export async function startHarness({ limitSeconds = 300 } = {}) {
  if (!existsSync(DOORMAN_BIN)) throw new Error(`no gateway binary at ${DOORMAN_BIN} (build it, or set DOORMAN_BIN)`);
  const proc = spawn(process.env.PYTHON || "python3", [HARNESS, "--binary", DOORMAN_BIN, "--limit", String(limitSeconds)], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  proc.stderr.on("data", (d) => { err += d; });
  const control = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the harness did not start within 60 s: " + err)), 60000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/harness ready (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`the harness exited (${code}): ${err}`)); });
  });
  // If this process ends without stop() (a crash), still end the harness (it then ends its gateway
  // and upstream); --limit bounds it in any case.
  process.on("exit", () => {
    if (proc.exitCode !== null) return;
    spawnSync(process.env.PYTHON || "python3", ["-c", `import urllib.request as u; u.urlopen(u.Request("${control}/stop", data=b"{}", method="POST"), timeout=5)`], { timeout: 8000 });
  });
  const api = async (method, p, body) => {
    const r = await fetch(control + p, { method, headers: { "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await r.json();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(data)}`);
    return data;
  };
  return {
    proc, control, api,
    info: () => api("GET", "/info"),
    publish: (data) => api("POST", "/publish", { data }),
    restart: () => api("POST", "/restart", {}),
    suspend: () => api("POST", "/suspend", {}),
    resume: () => api("POST", "/resume", {}),
    revoke: () => api("POST", "/revoke", {}),
    handshakes: () => api("GET", "/handshakes"),
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      try { await api("POST", "/stop", {}); } catch { /* already gone */ }
      const t = setTimeout(() => proc.kill("SIGTERM"), 15000);
      await exited;
      clearTimeout(t);
    },
  };
}
