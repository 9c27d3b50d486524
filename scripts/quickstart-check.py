#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The README's quick start, run as written: so the first thing a newcomer reads cannot drift from
the product.

Starts `scripts/serve.sh --port 0 --db <fresh store>` (the README's first command), reads the admin
key it prints, then runs the README's blocks marked `<!-- quickstart:setup -->`, `…:device` and
`…:publish` in one bash (`set -euo pipefail`), with only the two values the README asks the reader
to fill in replaced: the server's URL and the admin key. The device runs in the background; the
script waits (bounded) for its `subscribed` line before publishing, then for the event.
Checks: the admin key was printed once, every block ran, the publish was accepted, and the device
printed exactly the published data.

    python3 scripts/quickstart-check.py

Prints `quickstart: N passed, M failed` last; exits 1 on any failure. Loopback only; ends only the
processes it started, by PID.
"""
import json, os, re, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
results = []


def check(name, ok, detail=None):
    results.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail is not None and not ok else ""), flush=True)
    return ok


def blocks(readme):
    """The fenced block after each `<!-- quickstart:NAME -->` marker, by name."""
    found = {}
    for m in re.finditer(r"<!-- quickstart:(\w+) -->\s*```sh\n(.*?)```", readme, re.S):
        found[m.group(1)] = m.group(2)
    return found


def main():
    readme = open(os.path.join(ROOT, "README.md")).read()
    parts = blocks(readme)
    if not check("the README has the setup, device and publish blocks", {"setup", "device", "publish"} <= parts.keys(), sorted(parts)):
        return
    work = tempfile.mkdtemp(prefix="doorman-quickstart-")
    server = subprocess.Popen([os.path.join(ROOT, "scripts/serve.sh"), "--port", "0", "--db", os.path.join(work, "doorman.db")],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        key, port, lines = None, None, []
        deadline = time.monotonic() + 900  # the first start may build the gateway
        while time.monotonic() < deadline and port is None:
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("admin key: "):
                key = line.split(": ", 1)[1].strip()
            if m := re.match(r"doorman listening on [\d.]+:(\d+)", line):
                port = int(m.group(1))
        if not check("scripts/serve.sh starts and prints the admin key once", port and key and sum(l.startswith("admin key") for l in lines) == 1, lines[-5:]):
            return
        setup = parts["setup"].replace("http://127.0.0.1:8080", f"http://127.0.0.1:{port}").replace("dmk_…", key)
        device = parts["device"].strip()
        if not check("the device block runs the device in the background", device.endswith("&"), device):
            return
        out, err = os.path.join(work, "device.out"), os.path.join(work, "device.err")
        script = "\n".join([
            "set -euo pipefail",
            setup,
            device[:-1].rstrip() + f" > {out} 2> {err} &",
            "DEVICE=$!",
            # bounded waits for the device's own signals, not sleeps standing in for them
            f"for i in $(seq 1 200); do grep -q 'subscribed to' {err} && break; sleep 0.1; done",
            f"grep -q 'subscribed to' {err}",
            parts["publish"],
            f"for i in $(seq 1 200); do [ -s {out} ] && break; sleep 0.1; done",
            "kill $DEVICE",
        ])
        run = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
        check("the quick start's commands run without an error", run.returncode == 0, (run.returncode, run.stderr[-800:]))
        check("the publish is accepted", '"published":true' in run.stdout, run.stdout[-300:])
        printed = open(out).read().strip() if os.path.exists(out) else ""
        said = open(err).read() if os.path.exists(err) else ""
        try:
            event = json.loads(printed)
        except ValueError:
            event = None
        check("the device prints the published data", event == {"door": 12, "open": True}, (printed, said[-300:]))
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


try:
    main()
except Exception as e:  # a broken step fails the run with its reason
    check("the quick start ran to its end", False, f"{type(e).__name__}: {e}")
passed = sum(results)
print(f"quickstart: {passed} passed, {len(results) - passed} failed", flush=True)
sys.exit(0 if results and all(results) else 1)
