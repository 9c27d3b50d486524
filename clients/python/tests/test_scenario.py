# SPDX-License-Identifier: Apache-2.0
"""The shared client scenario against the real gateway binary:

connect, subscribe, receive a publish, call pms:checkIn, get throttled and recover, server restart
→ reconnect and resubscribe, key suspended → wait and come back after the resume, key revoked →
stop with the reason and no more handshakes.
Plain pytest; each test runs its coroutine with asyncio.run."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from conftest import Harness

from doorman_client import (Backoff, DoormanClient, Event, RateLimitedError, StopInfo, StoppedError,
                            UpstreamUnavailableError)


async def eventually(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def scenario(h: Harness) -> None:
    info = await asyncio.to_thread(h.get, "/info")
    channel, prop, call = info["channel"], info["property"], info["call"]
    events: asyncio.Queue[Event] = asyncio.Queue()
    stops: list[StopInfo] = []
    disconnects: list[tuple[int | None, str, float]] = []
    client = DoormanClient(info["url"], info["key"], backoff=Backoff(initial=0.1, max_delay=1.0), request_timeout=5,
                           call_timeout=10, on_stopped=stops.append,
                           on_disconnected=lambda code, reason, delay: disconnects.append((code, reason, delay)))

    # connect: the welcome names the key, its user's rights and the property
    welcome = await client.start(timeout=20)
    assert welcome is not None and welcome.key_id == info["keyID"]
    assert prop in welcome.properties and "pms:*" in welcome.scopes and welcome.expires_at is None
    assert client.connected

    # subscribe, receive a publish
    await client.subscribe(channel, events.put_nowait, property=prop)
    status, _ = await asyncio.to_thread(h.post, "/publish", {"data": {"door": 12, "n": 1}})
    assert status == 202
    event = await asyncio.wait_for(events.get(), 10)
    assert (event.channel, event.property, event.data) == (channel, prop, {"door": 12, "n": 1})

    # call the upstream: 200 with a JSON body. The harness does not wait for its upstream to listen
    # before it says ready, so the very first calls may meet upstream_unavailable: wait as told.
    deadline = time.monotonic() + 30
    while True:
        try:
            result = await client.call(call, {"room": 101}, property=prop)
            break
        except (UpstreamUnavailableError, RateLimitedError) as e:
            assert time.monotonic() < deadline, f"the upstream never answered: {e}"
            await asyncio.sleep(e.retry_after or 0.5)
    assert result.status == 200 and isinstance(result.body, dict)

    # throttled: a burst of 3 (one spent above), then rate_limited with a retry hint
    successes, throttled = 1, None
    for _ in range(4):
        try:
            await client.call(call, {"room": 102}, property=prop)
            successes += 1
        except RateLimitedError as e:
            throttled = e
            break
    assert throttled is not None, "never throttled"
    assert successes <= 4 and throttled.code == "rate_limited"
    assert throttled.retry_after is not None and 0 < throttled.retry_after <= 2.5
    # recover: after the hint, a call succeeds
    await asyncio.sleep(throttled.retry_after + 0.1)
    result = await client.call(call, {"room": 103}, property=prop)
    assert result.status == 200

    # server restart (1001): the client reconnects and resubscribes
    assert client.sessions == 1
    status, _ = await asyncio.to_thread(h.post, "/restart")
    assert status == 200
    await eventually(lambda: client.sessions >= 2 and client.connected, 30, "a reconnect after the restart")
    assert any(code == 1001 for code, _, _ in disconnects), disconnects
    status, _ = await asyncio.to_thread(h.post, "/publish", {"data": {"door": 12, "n": 2}})
    assert status == 202
    event = await asyncio.wait_for(events.get(), 10)
    assert event.data == {"door": 12, "n": 2}

    # suspended: close 4102 with the server's hint (1 s in the harness) → the client waits that plus
    # jitter, its tries meanwhile get 401 suspended_key with Retry-After and it keeps waiting (never
    # stops), and after the resume it is back by itself and resubscribed
    sessions_before, seen = client.sessions, len(disconnects)
    status, _ = await asyncio.to_thread(h.post, "/suspend")
    assert status == 200
    await eventually(lambda: len(disconnects) > seen, 10, "the suspension's close")
    code, reason, delay = disconnects[seen]
    assert (code, reason) == (4102, "key_suspended") and 1.0 <= delay < 2.0, disconnects[seen:]
    await eventually(lambda: len(disconnects) > seen + 1, 10, "a try while suspended")
    code, reason, delay = disconnects[seen + 1]
    assert (code, reason) == (401, "suspended_key") and 1.0 <= delay < 2.0, disconnects[seen:]
    assert not stops and client.stop_info is None
    status, _ = await asyncio.to_thread(h.post, "/resume")
    assert status == 200
    await eventually(lambda: client.sessions > sessions_before and client.connected, 10, "the device back after the resume")
    status, _ = await asyncio.to_thread(h.post, "/publish", {"data": {"door": 12, "n": 3}})
    assert status == 202
    event = await asyncio.wait_for(events.get(), 10)
    assert event.data == {"door": 12, "n": 3}

    # revoked: notice, close 4001 → the client stops for good and says why
    status, _ = await asyncio.to_thread(h.post, "/revoke")
    assert status == 200
    stopped = await asyncio.wait_for(client.stopped, 10)
    assert (stopped.code, stopped.reason) == (4001, "key_revoked")
    assert stopped.message == "This device's key was revoked."
    assert stops == [stopped] and client.stop_info == stopped and not client.connected
    try:
        await client.call(call, {"room": 104}, property=prop)
        raise AssertionError("a call after the stop succeeded")
    except StoppedError as e:
        assert e.code == "stopped" and e.info.code == 4001

    # no further connection attempts: the gateway's handshake count stays put
    attempts = client.attempts
    before = (await asyncio.to_thread(h.get, "/handshakes"))["total"]
    await asyncio.sleep(3)
    after = (await asyncio.to_thread(h.get, "/handshakes"))["total"]
    assert after == before, f"handshakes grew from {before} to {after} after the stop"
    assert client.attempts == attempts

    # a new client with the revoked key: 401 revoked_key → stops at once, one handshake only
    late_stops: list[StopInfo] = []
    late = DoormanClient(info["url"], info["key"], backoff=Backoff(initial=0.1, max_delay=0.2), on_stopped=late_stops.append)
    try:
        await late.start(timeout=10)
        raise AssertionError("a revoked key connected")
    except StoppedError as e:
        assert (e.info.http_status, e.info.reason, e.info.code) == (401, "revoked_key", None)
        assert e.info.message == "This device's key was revoked."
    await asyncio.sleep(1)
    assert late.attempts == 1 and late_stops == [late.stop_info]
    counts = await asyncio.to_thread(h.get, "/handshakes")
    assert counts["total"] == after + 1 and counts["revoked_key"] >= 1
    await late.close()
    await client.close()


def test_scenario(harness: Harness) -> None:
    asyncio.run(asyncio.wait_for(scenario(harness), 120))
