#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The client scenario in a real headless Chromium, through examples/dashboard.html.

Starts the shared harness (clients/scenario/harness.py: the gateway binary and the reference
upstream), serves clients/javascript over http://127.0.0.1:<free port> (a real origin), opens the
dashboard with the gateway URL and key in the URL fragment, and checks: connect (welcome shown),
subscribe and receive a publish, call pms:checkIn (200), the 4th quick call throttled
(rate_limited with retryAfterMs) and a call after the hint succeeds, server restart → reconnect,
resubscribe, a publish after the restart shown, key revoked → the page shows the reason
(4001 key_revoked, "This device's key was revoked.") and the gateway's handshake count does not
grow afterwards; a device coming back with the revoked key is upgraded and told why (4001), and
stops after that one attempt.

    DOORMAN_BIN=.build/release/doorman ~/.cache/shared-tools/venv-browser/bin/python clients/javascript/test/browser_test.py

Needs chromium, chromium-driver and selenium (/work/shared/tools/browser/setup.sh builds the venv).
Prints `js-browser: N passed, M failed` last; exits 1 on any failure.
"""
import functools, http.server, json, os, re, shutil, subprocess, sys, tempfile, threading, time, urllib.parse, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.dirname(HERE)                      # clients/javascript
ROOT = os.path.dirname(os.path.dirname(LIB))
HARNESS = os.path.join(ROOT, "clients/scenario/harness.py")
BIN = os.environ.get("DOORMAN_BIN", os.path.join(ROOT, ".build/release/doorman"))
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--password-store=basic",
                "--use-mock-keychain"]

results = []


def check(name, ok, detail=None):
    results.append((name, bool(ok)))
    print(f"  [{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail is not None else ""), flush=True)
    return ok


def finish():
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print(f"js-browser: {passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed or not passed else 0)


class Harness:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, HARNESS, "--binary", BIN, "--limit", "300"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()          # the harness prints one line when ready (or exits)
        m = re.search(r"harness ready (http://\S+)", line)
        if not m:
            raise RuntimeError(f"the harness did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.control = m.group(1)

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(self.control + path, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc.poll() is not None:
            return
        try:
            self.api("POST", "/stop")
        except Exception:
            pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(10)


def serve_library():
    handler = functools.partial(type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}), directory=LIB)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def start_chromium(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            opts.binary_location = shutil.which(name)
            break
    for f in CHROME_FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the Debian chromedriver by path: Selenium Manager must not try to download one
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)


def main():
    if not os.path.exists(BIN):
        check("gateway binary present", False, f"{BIN} (build it or set DOORMAN_BIN)")
        finish()
    harness = Harness()
    httpd = serve_library()
    profile = tempfile.mkdtemp(prefix="doorman-js-browser-")
    driver = None
    try:
        info = harness.api("GET", "/info")
        driver = start_chromium(profile)
        driver.set_script_timeout(30)
        print(f"  chromium {driver.capabilities.get('browserVersion')}, page http://127.0.0.1:{httpd.server_address[1]}", flush=True)
        js = driver.execute_script

        def text(el_id):
            return js(f"return document.getElementById({json.dumps(el_id)}).textContent")

        def wait(cond, timeout=10.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                v = cond()
                if v:
                    return v
                time.sleep(0.05)
            return cond()

        def list_data(list_id, attr):
            return js(f"return [...document.querySelectorAll('#{list_id} li')].reverse().map(li => li.dataset.{attr} ?? null)")

        fragment = urllib.parse.urlencode({"url": info["url"], "key": info["key"], "channel": info["channel"],
                                           "property": info["property"], "call": info["call"],
                                           "backoffBaseMs": 250, "backoffMaxMs": 2000, "restartDelayMs": 300})
        driver.get(f"http://127.0.0.1:{httpd.server_address[1]}/examples/dashboard.html#{fragment}")

        # 1. connect: the welcome is shown
        check("connects with the key (subprotocol) and shows the welcome",
              wait(lambda: js("return document.getElementById('status').dataset.state") == "open" and text("user") == "scenario devices"),
              {"status": text("status"), "user": text("user"), "session": text("session")})
        check("the key is not left in the address bar", "dmk_" not in driver.current_url)
        check("subscribed", wait(lambda: text("subscription") == "subscribed"), text("subscription"))

        # 2. a publish reaches the page
        harness.api("POST", "/publish", {"data": {"door": 12, "n": 1}})
        got = wait(lambda: list_data("events", "event"))
        check("receives a publish", got and json.loads(got[0]) == {"door": 12, "n": 1}, got)

        # 3. a call, then throttled on the 4th quick call, then recovered after the hint
        def click_call_and_wait(n):
            driver.find_element("id", "call").click()
            wait(lambda: len([r for r in list_data("calls", "result") if r]) >= n)
            return list_data("calls", "result"), list_data("calls", "status"), list_data("calls", "retryAfterMs")

        res, status, _ = click_call_and_wait(1)
        check("calls pms:checkIn: 200", res[0] == "ok" and status[0] == "200", {"result": res, "status": status})
        click_call_and_wait(2)
        click_call_and_wait(3)
        res, _, retry = click_call_and_wait(4)
        check("the 4th quick call is rate_limited with retryAfterMs", res[:3] == ["ok"] * 3 and res[3] == "rate_limited" and retry[3] and int(retry[3]) > 0,
              {"results": res, "retryAfterMs": retry[3]})
        time.sleep(int(retry[3] or 2000) / 1000 + 0.05)
        res, status, _ = click_call_and_wait(5)
        check("after waiting the hint a call succeeds", res[4] == "ok" and status[4] == "200", res)

        # 4. server restart: reconnect, resubscribe, a publish after the restart shown
        session_before = text("session")
        closes_before = len(json.loads(js("return document.getElementById('status').dataset.closes ?? '[]'")))
        harness.api("POST", "/restart")
        reconnected = wait(lambda: text("connections") == "2" and js("return document.getElementById('status').dataset.state") == "open", 15)
        # The session's close is the 1001; attempts made while the gateway was still down fail
        # before the upgrade (1006 handshake_failed) and may follow it.
        closes = json.loads(js("return document.getElementById('status').dataset.closes ?? '[]'"))[closes_before:]
        check("server restart (1001): reconnects",
              reconnected and closes and closes[0]["code"] == 1001
              and all(c["code"] == 1006 and c["reason"] == "handshake_failed" for c in closes[1:]),
              {"closes": closes, "connections": text("connections"), "status": text("status"), "session": [session_before, text("session")]})
        check("resubscribes after the reconnect", wait(lambda: text("subscription") == "subscribed" and js("return doorman.subscriptions.every(s => s.active)")), text("subscription"))
        harness.api("POST", "/publish", {"data": {"door": 12, "n": 2, "after": "restart"}})
        got = wait(lambda: len(list_data("events", "event")) >= 2 and list_data("events", "event"))
        check("a publish after the restart is shown", got and json.loads(got[-1]) == {"door": 12, "n": 2, "after": "restart"}, got)

        # 5. key revoked: the page shows the reason; no more handshakes
        harness.api("POST", "/revoke")
        shown = wait(lambda: js("return !document.getElementById('stopped').hidden"))
        check("revoked: the page shows the reason",
              shown and text("stop-message") == "This device's key was revoked." and text("stop-code") == "4001" and text("stop-reason") == "key_revoked",
              {"message": text("stop-message"), "code": text("stop-code"), "reason": text("stop-reason"), "status": text("status")})
        t0 = harness.api("GET", "/handshakes")["total"]
        time.sleep(3)
        t1 = harness.api("GET", "/handshakes")["total"]
        check("no connection attempts after the stop (gateway handshakes stay put)", t1 == t0, {"before": t0, "after 3 s": t1})
        check("the client's state is stopped", js("return doorman.state") == "stopped")

        # 6. a device coming back with the revoked key: the browser cannot read a refused handshake,
        #    so the server upgrades and says why (notice, close 4001): one attempt, then a stop
        away = driver.execute_async_script("""
            const [url, key, done] = arguments;
            import("../doorman.js").then(({ DoormanClient }) => {
              const c = new DoormanClient(url, key, { backoffBaseMs: 200, backoffMaxMs: 800 });
              const seen = [];
              c.on("disconnected", (d) => seen.push(d));
              c.connect().catch(() => {});
              setTimeout(() => { const r = { attempts: c.attempts, seen, state: c.state, stop: c.stopInfo }; c.close(); done(r); }, 2500);
            });""", info["url"], info["key"])
        t2 = harness.api("GET", "/handshakes")
        check("a revoked key in the browser: told why after the upgrade, one attempt, stopped",
              away["attempts"] == 1 and away["state"] == "stopped" and not away["seen"]
              and (away["stop"] or {}).get("code") == 4001 and (away["stop"] or {}).get("reason") == "key_revoked"
              and t2["total"] - t1 == 1 and t2["revoked_key"] >= 1,
              {"attempts": away["attempts"], "state": away["state"], "stop": away["stop"], "gateway handshakes": t2["total"] - t1})
        try:
            console = [f"{e.get('level')}: {e.get('message')}" for e in driver.get_log("browser")]
        except Exception as e:
            console = [f"(no console log: {e})"]
        errors = [c for c in console if c.startswith("SEVERE") and "favicon" not in c]
        for c in console[-3:]:
            print(f"  console: {c}")
        uncaught = [c for c in errors if "Uncaught" in c]
        check("no uncaught errors in the page", not uncaught, uncaught or None)
    except Exception as e:  # a broken step fails the run with its reason
        check("the scenario ran to the end", False, f"{type(e).__name__}: {e}")
    finally:
        if driver:
            driver.quit()
        httpd.shutdown()
        harness.stop()
        shutil.rmtree(profile, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
