# SPDX-License-Identifier: Apache-2.0
"""The shared scenario harness (clients/scenario/harness.py) as a pytest fixture: a real gateway
binary (env DOORMAN_BIN, default .build/release/doorman under the repository root) and the
reference upstream on 127.0.0.1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[3]
HARNESS = ROOT / "clients" / "scenario" / "harness.py"


class Harness:
    def __init__(self, control: str, process: subprocess.Popen[str]) -> None:
        self.control = control
        self.process = process

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.control + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body if body is not None else {}).encode()
        req = urllib.request.Request(self.control + path, data=data, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def gateway_binary() -> Path:
    binary = Path(os.environ.get("DOORMAN_BIN") or ROOT / ".build" / "release" / "doorman")
    if not binary.is_absolute():
        binary = ROOT / binary
    return binary


@pytest.fixture
def harness() -> Iterator[Harness]:
    binary = gateway_binary()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"the gateway binary {binary} is missing: build it (swift build -c release) or set DOORMAN_BIN")
    errors = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([sys.executable, str(HARNESS), "--binary", str(binary), "--limit", "300"],
                               stdout=subprocess.PIPE, stderr=errors, text=True)
    ready: list[str] = []

    def read_ready() -> None:
        assert process.stdout is not None
        line = process.stdout.readline()
        ready.append(line)

    reader = threading.Thread(target=read_ready, daemon=True)
    reader.start()
    reader.join(60)
    line = ready[0] if ready else ""
    if not line.startswith("harness ready "):
        process.kill()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()
        errors.seek(0)
        err = errors.read()
        errors.close()
        pytest.fail(f"the harness did not start: {line!r} {err[-2000:]}")
    h = Harness(line.split()[-1], process)
    try:
        yield h
    finally:
        try:
            h.post("/stop")
        except Exception:
            pass
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        assert process.stdout is not None
        process.stdout.close()
        errors.close()
