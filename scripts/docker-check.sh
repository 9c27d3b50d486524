#!/usr/bin/env bash
# Checks docker/ without a Docker engine (none runs where Doorman is built):
#
#   haproxy      `haproxy -c` on docker/haproxy.cfg with Debian's HAProxy (installed when missing, as
#                root); its only warnings may be the compose names that do not resolve here
#   compose      docker/compose.yaml and compose.single.yaml parsed (PyYAML) and interpolated as
#                compose does: services, images, health checks, depends_on conditions, the
#                variables (DOORMAN_BOOTSTRAP_KEY required), HAProxy's servers = the node services;
#                then validated by compose_spec (PyPI compose-spec: the Rust compose_spec crate's
#                strict parser); also `docker compose config` when that plugin is installed
#   dockerfile   two stages; the build stage installs every apt provider Package.swift names; every
#                package of both stages exists on Debian 12 (apt-cache policy)
#
# With DOORMAN_BIN=path/to/doorman (a release build), also:
#   libraries    every shared library the binary needs (ldd, dpkg -S) is installed by the runtime
#                stage's packages or their dependencies
#   topology     the compose topology as processes: a private PostgreSQL server, doorman-1 then
#                doorman-2 with the compose file's settings, HAProxy with docker/haproxy.cfg
#                (addresses rewritten to 127.0.0.1), then through HAProxy: readiness, the admin key
#                made with docker/README.md's one-liner, a user and a device key made with its curl
#                requests, WebSocket sessions on both nodes, doorman-2 drained with no failed
#                handshake, handshakes a node refuses with 503 replayed on the other, doorman-2
#                back in the rotation, HAProxy's per-address handshake limit
#
#   scripts/docker-check.sh                                      static checks (a few seconds)
#   DOORMAN_BIN=.build/release/doorman scripts/docker-check.sh   and the binary (about a minute)
#   env: DOORMAN_PG_BIN=dir DOORMAN_PG_BIN=dir   PostgreSQL's initdb/pg_ctl (default: the newest /usr/lib/postgresql/*/bin)
#        KEEP=1               keep the work folder (logs, the rewritten haproxy.cfg)
#
# Under CI=true a missing tool is a failure; elsewhere it is skipped, loudly. Ends with one line:
# "docker-check: N passed, M failed, K skipped"; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE="${SHARED_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shared-tools}"
WORK=$(mktemp -d /tmp/doorman-docker-check.XXXXXX)
. scripts/steps.sh

# Processes the topology starts, ended by PID; the PostgreSQL server by pg_ctl.
pids=()
pg_stop=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ ${#pg_stop[@]} -gt 0 ]]; then "${pg_stop[@]}" >/dev/null 2>&1 || true; fi
  if [[ "${KEEP:-0}" == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

apt_install() { # packages… (as root on Debian, quietly); fails when it cannot
  [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null || return 1
  echo "== installing $*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------------
# haproxy: the real binary checks the real file.
if ! command -v haproxy >/dev/null; then apt_install haproxy || true; fi
if command -v haproxy >/dev/null; then
  echo "== $(haproxy -v | head -1)"
  echo "\$ haproxy -c -f docker/haproxy.cfg"
  if haproxy -c -f docker/haproxy.cfg >"$WORK/haproxy-c.log" 2>&1; then ok=1; else ok=0; fi
  sed 's/^/   /' "$WORK/haproxy-c.log"
  # Where the compose names do not resolve, `init-addr last,libc,none` turns that into a warning
  # (2.6; a notice in 3.x) instead of an error; any other warning is a mistake in the file.
  unexpected=$(grep -E '\[(WARNING|ALERT)\]' "$WORK/haproxy-c.log" | grep -vE "could not resolve address 'doorman-[0-9]+'" || true)
  echo "   exit status $((1 - ok))"
  if [[ $ok == 1 && -z "$unexpected" ]]; then
    step "haproxy -c docker/haproxy.cfg" pass
  else
    [[ -n "$unexpected" ]] && echo "!! unexpected: $unexpected" >&2
    step "haproxy -c docker/haproxy.cfg" fail
  fi
else
  missing_tool "haproxy -c docker/haproxy.cfg" "haproxy is not installed (apt-get install haproxy)"
fi

# ---------------------------------------------------------------------------------------------
# The Python helper: compose checks and the topology (stdlib, PyYAML, compose-spec).
PY="$WORK/docker_check.py"
cat >"$PY" <<'PYTHON'
import http.server as http_server, json, os, re, resource, signal, socket, subprocess, sys, threading, time, urllib.request
from pathlib import Path

ROOT = Path.cwd()
DOCKER = ROOT / "docker"
failures = []

def check(ok, what):
    print(f"   {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)
    return ok

# ----- compose: interpolation as the Compose Specification defines it ------------------------
VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")

class InterpolationError(Exception):
    pass

def interpolate(text, env):
    def one(m):
        if m.group(0) == "$$":
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        body = m.group("braced")
        op = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", body, re.S)
        if not op:
            raise InterpolationError(f"invalid ${{{body}}}")
        name, sep, arg = op.group(1), op.group(2), op.group(3) or ""
        value = env.get(name)
        unset_or_empty = value is None or value == ""
        missing = unset_or_empty if sep and sep.startswith(":") else value is None
        if sep in (":-", "-"):
            return arg if missing else value
        if sep in (":?", "?"):
            if missing:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return value
        if sep in (":+", "+"):
            return "" if missing else arg
        return value or ""
    return VAR.sub(one, text)

def walk(node, env):
    if isinstance(node, dict):
        return {k: walk(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [walk(v, env) for v in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node

def seconds(duration):
    total, rest = 0.0, str(duration)
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", rest):
        total += float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    if re.sub(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", "", rest):
        raise ValueError(f"not a duration: {duration}")
    return total

SERVICE_KEYS = {"build", "image", "restart", "environment", "depends_on", "healthcheck", "stop_grace_period",
                "ulimits", "ports", "volumes", "command", "entrypoint", "networks", "labels", "logging",
                "pull_policy", "stop_signal", "user", "expose", "env_file", "deploy", "init", "hostname"}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}

def load(path, env):
    import yaml
    raw = yaml.safe_load(path.read_text())          # YAML 1.1 merge keys (<<) included
    return walk({k: v for k, v in raw.items() if not k.startswith("x-")}, env)

def environment_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}

def check_service_shape(name, service):
    check(not set(service) - SERVICE_KEYS, f"{name}: only known keys ({', '.join(sorted(set(service) - SERVICE_KEYS)) or 'ok'})")
    hc = service.get("healthcheck")
    if hc is not None:
        check(not set(hc) - HEALTHCHECK_KEYS, f"{name}: healthcheck has only known keys")
        check(isinstance(hc.get("test"), list) and hc["test"][:1] in (["CMD"], ["CMD-SHELL"]), f"{name}: healthcheck test is a CMD list")
        for key in ("interval", "timeout", "start_period"):
            if key in hc:
                try:
                    seconds(hc[key]); good = True
                except ValueError:
                    good = False
                check(good, f"{name}: healthcheck {key} {hc[key]} is a duration")
    for dep, spec in (service.get("depends_on") or {}).items():
        check(isinstance(spec, dict) and spec.get("condition") in ("service_started", "service_healthy", "service_completed_successfully"),
              f"{name}: depends_on {dep} has a valid condition ({spec.get('condition') if isinstance(spec, dict) else spec})")

def build_context_ok(name, service):
    build = service.get("build") or {}
    context = (DOCKER / build.get("context", ".")).resolve()
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    check(context == ROOT, f"{name}: build context {build.get('context')} is the repository root")
    check(dockerfile.resolve() == (DOCKER / "Dockerfile").resolve() and dockerfile.is_file(), f"{name}: dockerfile {build.get('dockerfile')} is docker/Dockerfile")

def haproxy_servers():
    servers, backend = [], None
    for line in (DOCKER / "haproxy.cfg").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if re.match(r"^(backend|listen|frontend|defaults|global|resolvers)\b", line):
            backend = line.split()[1] if len(line.split()) > 1 else line.split()[0]
        m = re.match(r"^server\s+(\S+)\s+(\S+):(\d+)\b(.*)", line)
        if m:
            servers.append((backend, m.group(1), m.group(2), int(m.group(3)), m.group(4)))
    return servers

def compose_checks(key):
    env = {k: v for k, v in os.environ.items() if k not in ("DOORMAN_BOOTSTRAP_KEY", "POSTGRES_PASSWORD")}
    # Without the key compose must refuse, naming the variable and where to read about it.
    try:
        load(DOCKER / "compose.yaml", env)
        check(False, "compose.yaml: refused without DOORMAN_BOOTSTRAP_KEY")
    except InterpolationError as error:
        check("DOORMAN_BOOTSTRAP_KEY" in str(error) and "README" in str(error),
              f"compose.yaml: refused without DOORMAN_BOOTSTRAP_KEY ({error})")
    env["DOORMAN_BOOTSTRAP_KEY"] = key
    c = load(DOCKER / "compose.yaml", env)
    services = c.get("services", {})
    print("   services:", ", ".join(services))
    check(set(c) <= {"services", "volumes", "networks", "configs", "secrets", "name"}, "compose.yaml: known top-level keys")
    check(set(services) == {"postgres", "doorman-1", "doorman-2", "haproxy"}, "compose.yaml: services postgres, doorman-1, doorman-2, haproxy")
    for name, service in services.items():
        check_service_shape(name, service)

    pg = services.get("postgres", {})
    check(str(pg.get("image", "")).startswith("postgres:"), f"postgres: official image ({pg.get('image')})")
    pg_test = (pg.get("healthcheck") or {}).get("test", [])
    check("pg_isready" in pg_test and "-h" in pg_test and pg_test[pg_test.index("-h") + 1] in ("127.0.0.1", "localhost"),
          "postgres: healthcheck runs pg_isready over TCP (the image's init server listens on its socket only)")
    named = [v.split(":")[0] for v in pg.get("volumes", []) if isinstance(v, str) and v.split(":")[1:2] == ["/var/lib/postgresql/data"]]
    check(len(named) == 1 and named[0] in (c.get("volumes") or {}), "postgres: data on a declared named volume")
    pg_env = environment_of(pg)

    nodes = {n: services.get(n, {}) for n in ("doorman-1", "doorman-2")}
    node_envs = {n: environment_of(s) for n, s in nodes.items()}
    for name, node in nodes.items():
        e = node_envs[name]
        build_context_ok(name, node)
        url = re.match(r"^postgres(?:ql)?://([^:@/]+)(?::([^@/]*))?@([^:/]+):(\d+)/([^?]+)", e.get("DOORMAN_DB", ""))
        check(bool(url), f"{name}: DOORMAN_DB is a postgres:// URL")
        if url:
            user, password, host, port, db = url.groups()
            check(host == "postgres" and port == "5432", f"{name}: DOORMAN_DB points at the postgres service")
            check((user, password or "", db) == (pg_env.get("POSTGRES_USER"), pg_env.get("POSTGRES_PASSWORD", ""), pg_env.get("POSTGRES_DB")),
                  f"{name}: DOORMAN_DB's user, password and database are postgres's")
        check(e.get("DOORMAN_BOOTSTRAP_KEY") == key, f"{name}: DOORMAN_BOOTSTRAP_KEY comes from the environment")
        check(bool(e.get("DOORMAN_NODE_NAME")), f"{name}: DOORMAN_NODE_NAME set ({e.get('DOORMAN_NODE_NAME')})")
        check((node.get("depends_on") or {}).get("postgres", {}).get("condition") == "service_healthy", f"{name}: depends_on postgres: service_healthy")
        port = e.get("DOORMAN_PORT", "8080")
        test = " ".join((node.get("healthcheck") or {}).get("test", []))
        check(f"127.0.0.1:{port}/readyz" in test, f"{name}: healthcheck GETs /readyz on its port")
        drain = float(e.get("DOORMAN_DRAIN_TIMEOUT", "10"))
        check(seconds(node.get("stop_grace_period", "10s")) > drain, f"{name}: stop_grace_period outlasts the {drain:g} s drain")
    check(len({e.get("DOORMAN_NODE_NAME") for e in node_envs.values()}) == 2, "doorman-1, doorman-2: distinct DOORMAN_NODE_NAME")
    check(nodes["doorman-1"].get("image") == nodes["doorman-2"].get("image"), "doorman-1, doorman-2: the same image")
    check({k: v for k, v in node_envs["doorman-1"].items() if k != "DOORMAN_NODE_NAME"}
          == {k: v for k, v in node_envs["doorman-2"].items() if k != "DOORMAN_NODE_NAME"}, "doorman-1, doorman-2: the same settings but the name")

    hp = services.get("haproxy", {})
    check(str(hp.get("image", "")).startswith("haproxy:"), f"haproxy: official image ({hp.get('image')})")
    check("8080:8080" in [str(p) for p in hp.get("ports", [])], "haproxy: publishes 8080")
    mounts = [v.split(":") for v in hp.get("volumes", []) if isinstance(v, str)]
    check(any(m[0] == "./haproxy.cfg" and m[1] == "/usr/local/etc/haproxy/haproxy.cfg" for m in mounts) and (DOCKER / "haproxy.cfg").is_file(),
          "haproxy: mounts docker/haproxy.cfg where the official image reads it")
    servers = haproxy_servers()
    ws = [(n, h, p) for b, n, h, p, _ in servers if b == "ws"]
    check(sorted(h for _, h, _ in ws) == ["doorman-1", "doorman-2"], "haproxy.cfg: backend ws has one server per node service")
    check(all(p == int(node_envs.get(h, {}).get("DOORMAN_PORT", "8080")) for _, h, p in ws), "haproxy.cfg: server ports are the nodes' ports")
    check(all(h in services for _, _, h, _, _ in servers), "haproxy.cfg: every server is a compose service")
    cfg = (DOCKER / "haproxy.cfg").read_text()
    for directive in ("balance leastconn", "option httpchk GET /readyz", "http-check expect status 200", "timeout tunnel",
                      "init-addr last,libc,none", "resolvers docker"):
        check(directive in cfg, f"haproxy.cfg: {directive}")
    host_ports = [str(p).rsplit(":", 2)[-2] for s in services.values() for p in s.get("ports", [])]
    check(len(host_ports) == len(set(host_ports)), "compose.yaml: host ports do not collide")

    single = load(DOCKER / "compose.single.yaml", {k: v for k, v in os.environ.items() if k != "DOORMAN_BOOTSTRAP_KEY"})
    for name, service in single.get("services", {}).items():
        check_service_shape(f"compose.single.yaml {name}", service)
        build_context_ok(f"compose.single.yaml {name}", service)
    return node_envs

# ----- the topology as processes -------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def http(method, url, body=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method, headers=headers or {})
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)

class WebSocket:
    """Just enough of a client: handshake, read unmasked server frames."""
    def __init__(self, port, key=None, timeout=5):
        self.status, self.head, self.body, self.buffer = 0, "", "", b""
        try:
            self._handshake(port, key, timeout)
        except OSError as error:            # refused, reset, timed out: status stays 0
            self.body = str(error)

    def _handshake(self, port, key, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        headers = ["GET /ws HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
        if key:
            headers.append(f"X-API-Key: {key}")
        self.sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0
        self.head = head.decode(errors="replace")
        if self.status != 101:
            length = re.search(r"(?i)content-length:\s*(\d+)", self.head)
            while length and len(self.buffer) < int(length.group(1)):
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                self.buffer += chunk
            self.body = self.buffer.decode(errors="replace")

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def frame(self):
        b0, b1 = self._read(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(self._read(2), "big")
        elif length == 127:
            length = int.from_bytes(self._read(8), "big")
        return b0 & 0x0F, self._read(length)

    def close(self):
        try:
            self.sock.close()
        except (OSError, AttributeError):
            pass

def wait_for(what, predicate, timeout=30, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    print(f"   (timed out after {timeout} s waiting for {what})")
    return False

def stats(port):
    status, text = http("GET", f"http://127.0.0.1:{port}/;csv")
    rows = {}
    if status == 200:
        for line in text.splitlines():
            fields = line.split(",")
            if len(fields) > 17 and not line.startswith("#"):
                rows[(fields[0], fields[1])] = fields[17]
    return rows

def metric(port, name):
    status, text = http("GET", f"http://127.0.0.1:{port}/metrics")
    m = re.search(rf"^{name} (\d+)", text, re.M) if status == 200 else None
    return int(m.group(1)) if m else -1

def topology(bin_path, pg_url, work, key, node_envs):
    work = Path(work)
    ports = {"doorman-1": free_port(), "doorman-2": free_port()}
    lb, stats_port = free_port(), free_port()
    procs = {}

    def start_node(name):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOORMAN_")}
        env.update(node_envs[name])
        env.update(DOORMAN_DB=pg_url, DOORMAN_HOST="127.0.0.1", DOORMAN_PORT=str(ports[name]), DOORMAN_BOOTSTRAP_KEY=key)
        out = open(work / f"{name}.out", "ab"); err = open(work / f"{name}.err", "ab")
        procs[name] = subprocess.Popen([bin_path, "serve"], env=env, stdout=out, stderr=err)
        print(f"   started {name} on 127.0.0.1:{ports[name]} (pid {procs[name].pid})", flush=True)

    def ready(port):
        return http("GET", f"http://127.0.0.1:{port}/readyz", timeout=2)[0] == 200

    try:
        # compose: postgres healthy → doorman-1 → (doorman-1 healthy) → doorman-2 → haproxy
        start_node("doorman-1")
        check(wait_for("doorman-1 ready", lambda: ready(ports["doorman-1"])), "doorman-1: /readyz 200 on PostgreSQL")
        out1 = (work / "doorman-1.out").read_text()
        check("dmk_" not in out1, "doorman-1: the bootstrap key is not printed")
        start_node("doorman-2")
        cfg = (DOCKER / "haproxy.cfg").read_text()
        for name, port in ports.items():
            cfg = cfg.replace(f"{name}:8080", f"127.0.0.1:{port}")
        cfg = cfg.replace("bind :8080", f"bind 127.0.0.1:{lb}").replace("bind :8404", f"bind 127.0.0.1:{stats_port}")
        # HAProxy needs two descriptors per connection and refuses to start without them; compose
        # gives the container 65536, this machine may allow fewer.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        maxconn = int(re.search(r"^\s*maxconn (\d+)", cfg, re.M).group(1))
        if hard != resource.RLIM_INFINITY and 2 * maxconn + 100 > hard:
            print(f"   (maxconn {maxconn} → {(hard - 100) // 2}: this machine's descriptor limit is {hard})")
            cfg = re.sub(r"^(\s*)maxconn \d+", lambda m: f"{m.group(1)}maxconn {(hard - 100) // 2}", cfg, count=1, flags=re.M)
        (work / "haproxy.cfg").write_text(cfg)
        check(subprocess.run(["haproxy", "-c", "-q", "-f", str(work / "haproxy.cfg")]).returncode == 0, "haproxy: the rewritten config is valid")
        procs["haproxy"] = subprocess.Popen(["haproxy", "-db", "-f", str(work / "haproxy.cfg")],
                                            stdout=open(work / "haproxy.log", "ab"), stderr=subprocess.STDOUT)
        print(f"   started haproxy on 127.0.0.1:{lb}, status page :{stats_port} (pid {procs['haproxy'].pid})", flush=True)
        time.sleep(0.5)
        if not check(procs["haproxy"].poll() is None, "haproxy: running"):
            return
        both_up = lambda: all(stats(stats_port).get(("ws", n)) == "UP" for n in ports)
        check(wait_for("both servers UP", both_up), "haproxy: doorman-1 and doorman-2 UP after /readyz checks")
        status, body = http("GET", f"http://127.0.0.1:{lb}/readyz")
        check(status == 200 and json.loads(body or "{}").get("status") == "ready", f"through haproxy: /readyz {status} {body}")

        # docker/README.md step 3, through HAProxy (its api backend spreads these over both nodes).
        admin = {"X-API-Key": key}
        status, body = http("GET", f"http://127.0.0.1:{lb}/v1/me", headers=admin)
        check(status == 200 and "admin:keys.write" in body, f"through haproxy: the bootstrap key is an admin key ({status})")
        status, body = http("POST", f"http://127.0.0.1:{lb}/v1/users", {"name": "Door panels", "permissions": ["channel:subscribe.door-*"], "properties": ["hotel-1"]}, admin)
        user = json.loads(body).get("id") if status == 201 or status == 200 else None
        check(bool(user), f"through haproxy: POST /v1/users → {status} {user}")
        status, body = http("POST", f"http://127.0.0.1:{lb}/v1/keys", {"userID": user, "name": "door 12"}, admin)
        secret = json.loads(body).get("secret") if status in (200, 201) else None
        check(bool(secret), f"through haproxy: POST /v1/keys → {status}, a secret")
        if not secret:
            return
        # The user was made on one node and the key on the other (backend api is round-robin):
        # each node learns the other's writes from the PostgreSQL change feed.
        def opens(port):
            s = WebSocket(port, secret)
            s.close()
            return s.status == 101
        check(wait_for("both nodes accept the key", lambda: all(opens(p) for p in ports.values()), timeout=15),
              "both nodes accept the new key directly (the change feed)")

        # Sessions spread over both nodes (leastconn).
        sessions = [WebSocket(lb, secret) for _ in range(20)]
        welcomes = 0
        for s in sessions:
            if s.status == 101:
                opcode, payload = s.frame()
                welcomes += opcode == 1 and json.loads(payload).get("type") == "welcome"
        check(welcomes == 20, f"through haproxy: 20 handshakes → {welcomes} welcomes")
        per_node = {n: metric(p, "doorman_sessions") for n, p in ports.items()}
        check(all(v >= 5 for v in per_node.values()) and sum(per_node.values()) == 20, f"sessions on both nodes: {per_node}")

        # Drain doorman-2: its sessions get 1001, no new handshake fails meanwhile.
        on_two = per_node["doorman-2"]
        procs["doorman-2"].send_signal(signal.SIGTERM)
        started, attempts, refused = time.monotonic(), 0, []
        while time.monotonic() - started < 6:
            s = WebSocket(lb, secret)
            attempts += 1
            if s.status != 101:
                refused.append(s.status)
            s.close()
            time.sleep(0.2)
        check(not refused, f"draining doorman-2: {attempts} handshakes through haproxy, refused: {refused or 'none'}")
        closes = 0
        for s in (s for s in sessions if s.status == 101):
            s.sock.settimeout(0.5)
            try:
                while True:
                    opcode, payload = s.frame()
                    if opcode == 8:
                        closes += int.from_bytes(payload[:2], "big") == 1001
                        break
            except (socket.timeout, EOFError, OSError):
                pass
        check(closes == on_two, f"draining doorman-2: its {on_two} sessions got close 1001 ({closes})")
        check(procs["doorman-2"].wait(timeout=20) == 0, "doorman-2 exited 0 after draining")
        check(wait_for("doorman-2 DOWN", lambda: stats(stats_port).get(("ws", "doorman-2")) == "DOWN", timeout=10),
              "haproxy: doorman-2 DOWN, api backend follows: " + str(stats(stats_port).get(("api", "doorman-2"))))
        check(http("GET", f"http://127.0.0.1:{lb}/readyz")[0] == 200, "through haproxy: /readyz still 200 with one node")
        for s in sessions:
            s.close()

        # A node that is up but refuses handshakes with 503 (draining while still listening, at its
        # connection cap): a stand-in on doorman-2's port. HAProxy must replay them on doorman-1.
        class Refusing(http_server.BaseHTTPRequestHandler):
            refused = 0
            def do_GET(self):
                ready = self.path == "/readyz"
                Refusing.refused += not ready
                body = b'{"status":"ready"}' if ready else b'{"error":"draining"}'
                self.send_response(200 if ready else 503)
                self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(body)))
                self.end_headers(); self.wfile.write(body)
            def log_message(self, *args):
                pass
            def handle(self):
                try:
                    super().handle()
                except OSError:
                    pass
        stand_in = http_server.ThreadingHTTPServer(("127.0.0.1", ports["doorman-2"]), Refusing)
        threading.Thread(target=stand_in.serve_forever, daemon=True).start()
        try:
            check(wait_for("the stand-in UP", lambda: stats(stats_port).get(("ws", "doorman-2")) == "UP"), "haproxy: a stand-in answering 503 to handshakes is UP")
            codes = []
            for _ in range(10):
                s = WebSocket(lb, secret); codes.append(s.status); s.close()
            check(codes == [101] * 10 and Refusing.refused >= 3,
                  f"through haproxy: 10 handshakes → {codes.count(101)} × 101; the stand-in refused {Refusing.refused}, each replayed on doorman-1")
        finally:
            stand_in.shutdown(); stand_in.server_close()
        check(wait_for("the stand-in DOWN", lambda: stats(stats_port).get(("ws", "doorman-2")) == "DOWN", timeout=10), "haproxy: the stand-in DOWN once gone")

        start_node("doorman-2")
        check(wait_for("doorman-2 UP again", lambda: stats(stats_port).get(("ws", "doorman-2")) == "UP"), "haproxy: doorman-2 back UP after restart")

        # HAProxy's per-address handshake limit: 100 in 2 s pass, then 429 handshake_rate.
        time.sleep(2.1)
        codes = []
        for _ in range(130):
            s = WebSocket(lb, None)
            codes.append((s.status, getattr(s, "body", "")))
            s.close()
        limited = [c for c in codes if c[0] == 429]
        check(all(c[0] == 401 for c in codes[:90]), f"haproxy: the first 90 reach a node (401 missing_key: no per-address limit there): {sorted({c[0] for c in codes[:90]})}")
        check(len(limited) >= 20 and all('{"error":"handshake_rate"}' == b for _, b in limited),
              f"haproxy: 130 handshakes in a burst → {len(limited)} × 429 handshake_rate from haproxy")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "topology":
        env = json.loads(Path(sys.argv[6]).read_text())
        topology(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], env)
    elif mode == "spec":
        import yaml
        from compose_spec import PyCompose
        env = dict(os.environ, DOORMAN_BOOTSTRAP_KEY=sys.argv[2])
        for name in ("compose.yaml", "compose.single.yaml"):
            try:
                compose = PyCompose.from_yaml(yaml.safe_dump(load(DOCKER / name, env), sort_keys=False))
                compose.validate()
                check(True, f"{name}: valid ({', '.join(compose.service_names())})")
            except Exception as error:
                check(False, f"{name}: {error}")
    elif mode == "node-envs":
        json.dump(compose_checks(sys.argv[2]), open(sys.argv[3], "w"))
    sys.exit(1 if failures else 0)
PYTHON

# docker/README.md's one-liner makes the admin key for the checks (so the one-liner is tested too).
keygen=$(sed -n "s/.*python3 -c '\(import secrets,zlib;.*\)').*/\1/p" docker/README.md | head -1)
KEY=""
if [[ -n "$keygen" ]]; then KEY=$(python3 -c "$keygen" || true); fi
if [[ "$KEY" =~ ^dmk_[0-9A-Za-z]{49}$ ]]; then
  step "docker/README.md key one-liner" pass
else
  echo "!! docker/README.md: no key generator line, or it printed '$KEY'" >&2
  step "docker/README.md key one-liner" fail
  KEY=dmk_0000000000000000000000000000000000000000000000000
fi

# ---------------------------------------------------------------------------------------------
# compose: PyYAML, and compose-spec (Python bindings of the Rust compose_spec crate, a strict
# parser of the Compose Specification), from PyPI into a cached venv.
VENV="$CACHE/venv-docker-check"
if ! "$VENV/bin/python" -c 'import yaml, compose_spec' 2>/dev/null; then
  echo "== installing pyyaml and compose-spec into $VENV" >&2
  python3 -m venv "$VENV" >/dev/null 2>&1 && "$VENV/bin/pip" install -q pyyaml==6.0.3 compose-spec==0.2.1 >/dev/null 2>&1 || true
fi
PYTHON="$VENV/bin/python"
"$PYTHON" -c 'import yaml' 2>/dev/null || PYTHON=python3
node_envs="$WORK/node-envs.json"
if "$PYTHON" -c 'import yaml' 2>/dev/null; then
  echo "\$ python3 (PyYAML): docker/compose.yaml, docker/compose.single.yaml"
  if "$PYTHON" "$PY" node-envs "$KEY" "$node_envs"; then step "compose files" pass; else step "compose files" fail; fi
else
  missing_tool "compose files" "PyYAML is not importable and could not be installed"
fi
if "$PYTHON" -c 'import compose_spec' 2>/dev/null; then
  echo "\$ compose_spec: parse and validate both files, interpolated"
  if "$PYTHON" "$PY" spec "$KEY"; then step "compose_spec validate" pass; else step "compose_spec validate" fail; fi
else
  missing_tool "compose_spec validate" "compose-spec (PyPI) could not be installed"
fi
if docker compose version >/dev/null 2>&1; then
  echo "\$ docker compose -f docker/compose.yaml config -q"
  if DOORMAN_BOOTSTRAP_KEY="$KEY" docker compose -f docker/compose.yaml config -q \
     && docker compose -f docker/compose.single.yaml config -q \
     && ! env -u DOORMAN_BOOTSTRAP_KEY docker compose -f docker/compose.yaml config -q 2>/dev/null; then
    step "docker compose config" pass
  else
    step "docker compose config" fail
  fi
else
  echo "   (the docker compose plugin is not installed: docker compose config was not run)"
fi

# ---------------------------------------------------------------------------------------------
# dockerfile: stages and package lists.
stage_packages() { # stage number (1 = build, 2 = runtime): the packages its apt-get install names
  awk -v want="$1" '/^FROM /{stage++} stage==want' docker/Dockerfile \
    | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' \
    | grep -o 'apt-get install [^&]*' | sed 's/apt-get install//' | tr ' ' '\n' | grep -v '^-' | grep -v '^$' || true
}
build_pkgs=$(stage_packages 1); runtime_pkgs=$(stage_packages 2)
echo "   build stage installs:   $(echo $build_pkgs)"
echo "   runtime stage installs: $(echo $runtime_pkgs)"
dockerfile_ok=1
[[ $(grep -c '^FROM ' docker/Dockerfile) -eq 2 ]] || { echo "!! docker/Dockerfile: expected two stages" >&2; dockerfile_ok=0; }
grep -q '^FROM swift:[0-9.]*-bookworm AS build' docker/Dockerfile || { echo "!! build stage is not swift:*-bookworm AS build" >&2; dockerfile_ok=0; }
grep -q '^FROM debian:bookworm-slim' docker/Dockerfile || { echo "!! runtime stage is not debian:bookworm-slim" >&2; dockerfile_ok=0; }
grep -q '^COPY --from=build ' docker/Dockerfile || { echo "!! the runtime stage copies nothing from the build" >&2; dockerfile_ok=0; }
grep -qE 'swift build -c release --product doorman --static-swift-stdlib' docker/Dockerfile || { echo "!! the build command changed: check it by hand (docker/README.md)" >&2; dockerfile_ok=0; }
sed -e ':a' -e '/\\$/N; s/\\\n//; ta' docker/Dockerfile | grep -qE '^HEALTHCHECK .*CMD .*/(healthz|readyz)' \
  || { echo "!! no HEALTHCHECK on /healthz or /readyz" >&2; dockerfile_ok=0; }
for provider in $(grep -o '\.apt(\[[^]]*\])' Package.swift | grep -o '"[^"]*"' | tr -d '"'); do
  grep -qx "$provider" <<<"$build_pkgs" || { echo "!! Package.swift needs $provider; the build stage does not install it" >&2; dockerfile_ok=0; }
done
if grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null && command -v apt-cache >/dev/null; then
  for pkg in $build_pkgs $runtime_pkgs; do
    candidate=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^  Candidate: //p')
    printf '   apt-cache policy %-16s candidate %s\n' "$pkg" "${candidate:-NONE}"
    [[ -n "$candidate" && "$candidate" != "(none)" ]] || dockerfile_ok=0
  done
else
  echo "   (not Debian 12: the package names were not looked up)"
fi
if [[ $dockerfile_ok == 1 ]]; then step "dockerfile" pass; else step "dockerfile" fail; fi

# ---------------------------------------------------------------------------------------------
# With a binary: its libraries, and the topology.
if [[ -n "${DOORMAN_BIN:-}" && ! -x "${DOORMAN_BIN}" ]]; then
  echo "!! DOORMAN_BIN=$DOORMAN_BIN is not an executable" >&2
  step "runtime libraries" fail; step "topology" fail
elif [[ -n "${DOORMAN_BIN:-}" ]]; then
  BIN=$(realpath "$DOORMAN_BIN")
  # libraries: ldd → dpkg -S → in the closure of the runtime stage's packages (and their Depends).
  closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
              $runtime_pkgs 2>/dev/null | grep -v '^ ' | sed 's/:.*//' | sort -u || true)
  libs_ok=1
  echo "\$ ldd $DOORMAN_BIN | dpkg -S"
  while read -r lib path; do
    real=$(readlink -f "$path")
    owner=$(dpkg -S "$real" 2>/dev/null || dpkg -S "$path" 2>/dev/null || true)
    pkg=${owner%%:*}
    if [[ -z "$pkg" ]]; then
      if [[ "$lib" == libswift* || "$lib" == libFoundation* || "$lib" == lib_Foundation* || "$lib" == libdispatch* || "$lib" == libBlocksRuntime* ]]; then
        printf '   %-24s %-48s Swift runtime (built without --static-swift-stdlib; the image links it statically)\n' "$lib" "$real"
      else
        printf '   %-24s %-48s NOT FROM A DEBIAN PACKAGE\n' "$lib" "$real"; libs_ok=0
      fi
    elif grep -qx "$pkg" <<<"$closure"; then
      printf '   %-24s %-48s %s\n' "$lib" "$real" "$pkg"
    else
      printf '   %-24s %-48s %s — NOT INSTALLED BY THE RUNTIME STAGE\n' "$lib" "$real" "$pkg"; libs_ok=0
    fi
  done < <(ldd "$BIN" | awk '/=>/ && $3 ~ /^\// {print $1, $3} /not found/ {print $1, "NOT-FOUND"} !/=>/ && $1 ~ /^\// {n=split($1,a,"/"); print a[n], $1}')
  if [[ $libs_ok == 1 ]]; then step "runtime libraries" pass; else step "runtime libraries" fail; fi

  # topology: PostgreSQL (its server refuses root: run it as the postgres user then), two nodes, HAProxy.
  pg_bin="${DOORMAN_PG_BIN:-}"
  if [[ -z "$pg_bin" ]]; then
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do [[ -x "$d/initdb" ]] && { pg_bin=$d; break; }; done
  fi
  if [[ -z "$pg_bin" ]] && command -v initdb >/dev/null; then pg_bin=$(dirname "$(command -v initdb)"); fi
  if [[ -z "$pg_bin" ]]; then
    missing_tool "topology" "the PostgreSQL server is not installed (apt-get install postgresql)"
  elif ! command -v haproxy >/dev/null; then
    missing_tool "topology" "haproxy is not installed"
  elif [[ ! -s "$node_envs" ]]; then
    step "topology" fail; echo "!! the compose checks did not produce the nodes' settings" >&2
  else
    as_pg=()
    PGDIR="$WORK/pg"; mkdir -p "$PGDIR"
    # As root, the server runs as the postgres user (Debian's postgresql package creates it).
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$PGDIR" 2>/dev/null || true; chmod 755 "$WORK"; as_pg=(runuser -u postgres --); fi
    PGPORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    echo "\$ initdb, pg_ctl start (127.0.0.1:$PGPORT), createdb doorman"
    if "${as_pg[@]}" "$pg_bin/initdb" -D "$PGDIR/data" -U doorman -A trust --no-locale -E UTF8 --no-sync >"$WORK/initdb.log" 2>&1 \
       && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
            -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off" start >"$WORK/pg_ctl.log" 2>&1; then
      pg_stop=("${as_pg[@]}" "$pg_bin/pg_ctl" -D "$PGDIR/data" -m immediate -w stop)
      "$pg_bin/pg_isready" -h 127.0.0.1 -p "$PGPORT" -U doorman -d postgres | sed 's/^/   /' || true
      if "$pg_bin/createdb" -h 127.0.0.1 -p "$PGPORT" -U doorman doorman \
         && "$PYTHON" "$PY" topology "$BIN" "postgres://doorman@127.0.0.1:$PGPORT/doorman" "$WORK" "$KEY" "$node_envs"; then
        step "topology" pass
      else
        for f in doorman-1.err doorman-2.err haproxy.log; do echo "-- tail $f" >&2; tail -5 "$WORK/$f" >&2 || true; done
        step "topology" fail
      fi
    else
      cat "$WORK/initdb.log" "$WORK/pg_ctl.log" "$PGDIR/server.log" 2>/dev/null | tail -10 >&2
      step "topology" fail
    fi
  fi
else
  echo "   (DOORMAN_BIN is not set: the binary's libraries and the topology were not checked)"
fi

echo
printf '%s\n' "${results[@]}"
echo "docker-check: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
