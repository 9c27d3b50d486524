# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the client against a scripted in-process WebSocket server (websockets' own): the
paths the real gateway does not easily produce on demand (4200, 4129, 429 with Retry-After, a lost
close frame, permissions_changed, expiry_warning, timeouts, a connection lost mid-call).
Plain pytest; each test runs its coroutine with asyncio.run."""
from __future__ import annotations

import asyncio
import json
import socket
import time
from http import HTTPStatus
from typing import Any, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from doorman_client import (Backoff, ConnectionLostError, DoormanClient, Event, ForbiddenError, PermissionsChanged,
                            RateLimitedError, RequestTimeoutError, StopInfo, StoppedError, UpstreamStatusError)

WELCOME = {"type": "welcome", "session": "s", "user": {"id": "usr_1", "name": "Door panels"},
           "key": {"id": "key_1", "name": "door 12"}, "scopes": ["channel:*"], "properties": ["hotel-1"], "rules": [],
           "expiresAt": None}

Script = Callable[[ServerConnection, int], Awaitable[None]]


class Fake:
    """A WebSocket server whose n-th connection (1-based) runs ``script(ws, n)``; records what it saw."""

    def __init__(self, script: Script, reject: Callable[[ServerConnection, int], Response | None] | None = None) -> None:
        self.script = script
        self.reject = reject
        self.handshakes = 0
        self.connections = 0
        self.times: list[float] = []
        self.headers: list[dict[str, str]] = []

    async def __aenter__(self) -> "Fake":
        async def process_request(ws: ServerConnection, request: Request) -> Response | None:
            self.handshakes += 1
            self.times.append(time.monotonic())
            self.headers.append(dict(request.headers.raw_items()))
            return self.reject(ws, self.handshakes) if self.reject else None

        async def handler(ws: ServerConnection) -> None:
            self.connections += 1
            await self.script(ws, self.connections)

        self.server = await serve(handler, "127.0.0.1", 0, process_request=process_request)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ws"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


async def serve_requests(ws: ServerConnection, received: list[dict[str, Any]] | None = None,
                         answer: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None) -> None:
    """Answers every request with a result (or what ``answer`` returns; None: no answer)."""
    async for raw in ws:
        m = json.loads(raw)
        if received is not None:
            received.append(m)
        reply = answer(m) if answer else {}
        if reply is not None:
            await ws.send(json.dumps({"type": "result", "id": m["id"], **reply}))


def run(coro: Awaitable[None], timeout: float = 30) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


async def until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Callable[[ServerConnection, int], Response]:
    def make(ws: ServerConnection, n: int) -> Response:
        response = ws.respond(HTTPStatus(status), json.dumps(body))
        for k, v in (headers or {}).items():
            response.headers[k] = v
        return response
    return make


# ---------------------------------------------------------------- connecting

def test_sends_the_key_and_exposes_the_welcome() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps({**WELCOME, "expiresAt": "2030-01-01T00:00:00Z"}))
        await serve_requests(ws)

    async def main() -> None:
        async with Fake(script) as f:
            async with DoormanClient(f.url, "dmk_secret") as client:
                w = client.welcome
                assert w is not None and w.session == "s" and w.user_id == "usr_1" and w.key_id == "key_1"
                assert w.scopes == ["channel:*"] and w.properties == ["hotel-1"] and w.rules == [] and w.expiresAt == "2030-01-01T00:00:00Z"
                assert await client.ping() >= 0
            assert f.headers[0].get("X-API-Key") == "dmk_secret"
            assert client.stop_info is not None and client.stop_info.by_client
    run(main())


def test_typed_errors_and_call_results() -> None:
    answers: dict[str, dict[str, Any]] = {
        "pms:ok": {"type": "result", "status": 200, "body": {"room": 101}},
        "pms:bin": {"type": "result", "status": 200, "body": "AAE=", "bodyEncoding": "base64"},
        "pms:denied": {"type": "error", "error": "forbidden", "reason": "denied_by_rule", "rule": "!pms:denied", "message": "no"},
        "pms:busy": {"type": "error", "error": "rate_limited", "message": "too many calls", "retryAfterMs": 1500},
        "pms:down": {"type": "error", "error": "upstream_unavailable", "message": "refused", "retryAfterMs": 2000},
        "pms:404": {"type": "error", "error": "upstream_status", "status": 404, "body": {"e": 1}, "message": "x"},
        "pms:new": {"type": "error", "error": "something_new", "message": "?"},
    }

    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps(WELCOME))
        async for raw in ws:
            m = json.loads(raw)
            if m["type"] == "call" and m["call"] != "pms:silent":
                await ws.send(json.dumps({**answers[m["call"]], "id": m["id"]}))

    async def main() -> None:
        from doorman_client import DoormanError, UpstreamUnavailableError
        async with Fake(script) as f, DoormanClient(f.url, "k") as client:
            r = await client.call("pms:ok", {"room": 101}, property="hotel-1")
            assert (r.status, r.body) == (200, {"room": 101})
            assert (await client.call("pms:bin")).content == b"\x00\x01"
            with pytest.raises(ForbiddenError) as forbidden:
                await client.call("pms:denied")
            assert forbidden.value.code == "forbidden" and forbidden.value.reason == "denied_by_rule" and forbidden.value.rule == "!pms:denied"
            with pytest.raises(RateLimitedError) as limited:
                await client.call("pms:busy")
            assert limited.value.retry_after == 1.5
            with pytest.raises(UpstreamUnavailableError) as down:
                await client.call("pms:down")
            assert down.value.retry_after == 2.0
            with pytest.raises(UpstreamStatusError) as status:
                await client.call("pms:404")
            assert (status.value.status, status.value.body) == (404, {"e": 1})
            with pytest.raises(DoormanError) as other:
                await client.call("pms:new")
            assert type(other.value) is DoormanError and other.value.code == "something_new"
            # The client's own timeout ends the call (no answer ever comes: pytest's run would hang otherwise).
            with pytest.raises(RequestTimeoutError) as timeout:
                await client.call("pms:silent", timeout=0.2)
            assert timeout.value.code == "timeout"
    run(main())


def test_subscribe_refused_is_not_kept_and_events_reach_handlers() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps(WELCOME))
        async for raw in ws:
            m = json.loads(raw)
            if m.get("channel") == "billing":
                await ws.send(json.dumps({"type": "error", "id": m["id"], "error": "forbidden", "reason": "not_permitted_for_user", "message": "no"}))
                continue
            await ws.send(json.dumps({"type": "result", "id": m["id"]}))
            if m["type"] == "subscribe":
                await ws.send(json.dumps({"type": "event", "channel": m["channel"], "property": m.get("property"), "data": {"x": 1}}))

    async def main() -> None:
        got: list[Event] = []
        async_got: list[Event] = []

        async def async_handler(e: Event) -> None:
            async_got.append(e)

        async with Fake(script) as f, DoormanClient(f.url, "k") as client:
            with pytest.raises(ForbiddenError):
                await client.subscribe("billing", got.append, property="hotel-1")
            assert client.subscriptions == []
            await client.subscribe("door-events", got.append, property="hotel-1")
            await client.subscribe("door-events", async_handler, property="hotel-1")
            await until(lambda: len(got) >= 2 and len(async_got) >= 1)
            assert got[0] == Event("door-events", "hotel-1", {"x": 1})
            await client.unsubscribe("door-events", property="hotel-1")
            assert client.subscriptions == []
    run(main())


# ---------------------------------------------------------------- reconnecting

def test_4200_reconnects_at_once_and_resubscribes() -> None:
    received: list[dict[str, Any]] = []

    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps(WELCOME))
        if n == 1:
            async for raw in ws:
                m = json.loads(raw)
                received.append(m)
                await ws.send(json.dumps({"type": "result", "id": m["id"]}))
                await ws.close(4200, "reconnect")
                return
        await serve_requests(ws, received)

    async def main() -> None:
        async with Fake(script) as f:
            client = DoormanClient(f.url, "k", backoff=Backoff(initial=5, max_delay=10))
            await client.start(timeout=5)
            await client.subscribe("door-events", lambda e: None, property="hotel-1")
            await until(lambda: client.sessions == 2 and client.connected)
            assert f.times[1] - f.times[0] < 1.0          # not the 5 s backoff
            subs = [m for m in received if m["type"] == "subscribe"]
            assert len(subs) == 2 and subs[1]["channel"] == "door-events" and subs[1]["property"] == "hotel-1"
            await client.close()
    run(main())


def test_4129_backs_off_at_least_the_floor() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps(WELCOME))
        if n == 1:
            await ws.send(json.dumps({"type": "notice", "reason": "rate_limited", "code": 4129, "reconnect": True, "message": "Too many"}))
            await ws.close(4129, "rate_limited")
            return
        await ws.wait_closed()

    async def main() -> None:
        seen: list[tuple[int | None, str, float]] = []
        async with Fake(script) as f:
            client = DoormanClient(f.url, "k", backoff=Backoff(initial=0.01, max_delay=0.02),
                                   on_disconnected=lambda c, r, d: seen.append((c, r, d)))
            await client.start(timeout=5)
            await until(lambda: client.sessions == 2, 5)
            assert seen[0][0] == 4129 and seen[0][2] >= 1.0
            assert f.times[1] - f.times[0] >= 1.0
            await client.close()
    run(main())


def test_1001_reconnects_promptly() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps(WELCOME))
        if n == 1:
            await ws.close(1001, "server shutting down")
            return
        await ws.wait_closed()

    async def main() -> None:
        async with Fake(script) as f:
            # The first step after a restart is at most `initial`, whatever came before.
            client = DoormanClient(f.url, "k", backoff=Backoff(initial=0.2, max_delay=30, rng=lambda: 1.0))
            await client.start(timeout=5)
            await until(lambda: client.sessions == 2, 5)
            assert f.times[1] - f.times[0] < 0.6
            await client.close()
    run(main())


def test_handshake_429_honors_retry_after_then_connects() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps(WELCOME))
        await ws.wait_closed()

    limited = json_response(429, {"error": "too_many_sessions_for_key"}, {"Retry-After": "1"})

    async def main() -> None:
        async with Fake(script, reject=lambda ws, n: limited(ws, n) if n == 1 else None) as f:
            client = DoormanClient(f.url, "k", backoff=Backoff(initial=0.01, max_delay=0.02))
            await client.start(timeout=5)
            assert f.handshakes == 2 and f.times[1] - f.times[0] >= 1.0
            await client.close()
    run(main())


def test_backoff_grows_while_the_server_is_unreachable() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                      # nothing listens there: connection refused

    async def main() -> None:
        delays: list[float] = []
        client = DoormanClient(f"ws://127.0.0.1:{port}/ws", "k", backoff=Backoff(initial=0.02, max_delay=0.16, rng=lambda: 1.0),
                               on_disconnected=lambda c, r, d: delays.append(d))
        await client.start(wait=False)
        await until(lambda: len(delays) >= 6, 5)
        assert delays[:6] == [0.02, 0.04, 0.08, 0.16, 0.16, 0.16]
        with pytest.raises(RequestTimeoutError):
            await client.call("pms:checkIn", timeout=0.1)     # requests wait for a connection, within their timeout
        await client.close()
        attempts = client.attempts
        await asyncio.sleep(0.3)
        assert client.attempts == attempts                  # closed: no more attempts
    run(main())


# ---------------------------------------------------------------- stopping

def test_revoked_notice_and_close_stop_for_good() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps(WELCOME))
        await asyncio.sleep(0.1)
        await ws.send(json.dumps({"type": "notice", "reason": "key_revoked", "code": 4001, "reconnect": False,
                                  "message": "This device's key was revoked."}))
        await ws.close(4001, "key_revoked")

    async def main() -> None:
        stops: list[StopInfo] = []

        async def on_stopped(info: StopInfo) -> None:      # async callbacks work too
            stops.append(info)

        async with Fake(script) as f:
            client = DoormanClient(f.url, "k", backoff=Backoff(initial=0.01, max_delay=0.02), on_stopped=on_stopped)
            await client.start(timeout=5)
            info = await asyncio.wait_for(client.stopped, 5)
            assert (info.code, info.reason, info.message, info.http_status) == (4001, "key_revoked", "This device's key was revoked.", None)
            await asyncio.sleep(0.3)
            assert f.handshakes == 1 and stops == [info]
            with pytest.raises(StoppedError):
                await client.publish("door-events", {}, property="hotel-1")
            with pytest.raises(StoppedError):
                await client.start()
            assert await client.close() == info                 # close after a stop keeps the server's reason
    run(main())


def test_a_lost_close_frame_after_a_stop_notice_still_stops() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps(WELCOME))
        await ws.send(json.dumps({"type": "notice", "reason": "key_expired", "code": 4003, "reconnect": False,
                                  "message": "This device's key has expired."}))
        await asyncio.sleep(0.1)
        ws.transport.abort()                              # no close frame

    async def main() -> None:
        async with Fake(script) as f:
            client = DoormanClient(f.url, "k", backoff=Backoff(initial=0.01, max_delay=0.02))
            await client.start(wait=False)
            info = await asyncio.wait_for(client.stopped, 5)
            assert (info.code, info.reason) == (4003, "key_expired")
            await asyncio.sleep(0.2)
            assert f.handshakes == 1
    run(main())


def test_handshake_401_stops_with_the_reason_from_the_body() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        raise AssertionError("never upgraded")

    async def main() -> None:
        async with Fake(script, reject=json_response(401, {"error": "expired_key"})) as f:
            client = DoormanClient(f.url, "k", backoff=Backoff(initial=0.01, max_delay=0.02))
            with pytest.raises(StoppedError) as e:
                await client.start(timeout=5)
            assert (e.value.info.http_status, e.value.info.reason) == (401, "expired_key")
            assert e.value.info.message == "This device's key has expired."
            await asyncio.sleep(0.2)
            assert f.handshakes == 1
    run(main())


# ---------------------------------------------------------------- pushes and failures

def test_permissions_changed_and_expiry_warning_are_surfaced() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps(WELCOME))
        async for raw in ws:
            m = json.loads(raw)
            await ws.send(json.dumps({"type": "result", "id": m["id"]}))
            if m["type"] == "subscribe" and m["channel"] == "b":
                await ws.send(json.dumps({"type": "permissions_changed", "scopes": ["channel:subscribe.a"], "properties": ["hotel-1"],
                                          "rules": [], "expiresAt": "2030-01-01T00:00:00Z",
                                          "removedSubscriptions": [{"channel": "b", "property": "hotel-1"}]}))
                await ws.send(json.dumps({"type": "expiry_warning", "expiresAt": "2030-01-01T00:00:00Z"}))
                await ws.send(json.dumps({"type": "error", "error": "rate_limited", "message": "too many messages", "retryAfterMs": 10}))

    async def main() -> None:
        changes: list[PermissionsChanged] = []
        warnings: list[str | None] = []
        errors: list[Exception] = []
        async with Fake(script) as f:
            client = DoormanClient(f.url, "k", on_permissions_changed=changes.append, on_expiry_warning=warnings.append,
                                   on_error=errors.append)
            await client.start(timeout=5)
            await client.subscribe("a", lambda e: None, property="hotel-1")
            await client.subscribe("b", lambda e: None, property="hotel-1")
            await until(lambda: bool(changes and warnings and errors))
            assert changes[0].scopes == ["channel:subscribe.a"] and changes[0].removed[0].channel == "b"
            assert [s.channel for s in client.subscriptions] == ["a"]     # not made again on reconnect
            assert client.welcome is not None and client.welcome.scopes == ["channel:subscribe.a"]
            assert client.welcome.expires_at == "2030-01-01T00:00:00Z"
            assert warnings == ["2030-01-01T00:00:00Z"]
            assert isinstance(errors[0], RateLimitedError) and errors[0].retry_after == 0.01
            await client.close()
    run(main())


def test_a_call_in_flight_when_the_connection_drops_fails_and_is_not_resent() -> None:
    calls: list[dict[str, Any]] = []

    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps(WELCOME))
        async for raw in ws:
            m = json.loads(raw)
            if m["type"] == "call":
                calls.append(m)
                if n == 1:
                    ws.transport.abort()
                    return
            await ws.send(json.dumps({"type": "result", "id": m["id"], "status": 200, "body": None}))

    async def main() -> None:
        async with Fake(script) as f:
            client = DoormanClient(f.url, "k", backoff=Backoff(initial=0.01, max_delay=0.02))
            await client.start(timeout=5)
            with pytest.raises(ConnectionLostError) as lost:
                await client.call("pms:checkIn", {"room": 1})
            assert lost.value.code == "connection_lost"
            await until(lambda: client.sessions == 2 and client.connected)
            assert len(calls) == 1
            assert (await client.call("pms:checkIn", {"room": 2})).status == 200
            await client.close()
    run(main())


def test_a_request_made_while_reconnecting_waits_for_the_session() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(json.dumps(WELCOME))
            await asyncio.sleep(0.2)
            await ws.close(1011, "oops")
            return
        await asyncio.sleep(0.3)
        await ws.send(json.dumps(WELCOME))
        await serve_requests(ws, answer=lambda m: {"status": 200, "body": {"ok": True}})

    async def main() -> None:
        async with Fake(script) as f:
            client = DoormanClient(f.url, "k", backoff=Backoff(initial=0.01, max_delay=0.02))
            await client.start(timeout=5)
            await until(lambda: not client.connected)
            result = await client.call("pms:checkIn", timeout=5)
            assert result.body == {"ok": True} and client.sessions == 2
            await client.close()
    run(main())



def test_close_during_a_handshake_that_hangs_returns_at_once() -> None:
    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()                           # accepts, never answers the upgrade
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = DoormanClient(f"ws://127.0.0.1:{port}/ws", "k", open_timeout=30)
        await client.start(wait=False)
        await asyncio.sleep(0.2)
        # close() returns although the handshake never completes (it would hang otherwise).
        info = await asyncio.wait_for(client.close(), timeout=30)
        assert info.by_client and client.attempts == 1
        server.close()
        await server.wait_closed()
    run(main())
