# SPDX-License-Identifier: Apache-2.0
"""The asyncio client: one supervised WebSocket session that reconnects, resubscribes and stops
for good when the server says so (see ``policy`` for the rules)."""
from __future__ import annotations

import asyncio
import dataclasses
import inspect
import itertools
import json
import logging
import time
from typing import Any, Awaitable, Callable, Mapping, Union

from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .errors import (ConnectionLostError, DoormanError, RequestTimeoutError, StopInfo, StoppedError,
                     error_from_message)
from .models import CallResult, Event, PermissionsChanged, Subscription, Welcome
from .policy import Action, Backoff, Decision, close_decision, handshake_decision

__all__ = ["DoormanClient", "connect", "Handler", "__version__"]

__version__ = "0.1.0"

Handler = Callable[[Event], Union[Awaitable[None], None]]
Callback = Callable[..., Union[Awaitable[None], None]]

log = logging.getLogger("doorman_client")

#: After this many "reconnect now" closes in a row without a stable session, back off instead.
MAX_IMMEDIATE_RECONNECTS = 3


class DoormanClient:
    """A Doorman session that stays up.

    >>> client = DoormanClient("wss://doorman.example/ws", key, on_stopped=show_why)
    >>> welcome = await client.start()          # returns once connected (the client keeps trying)
    >>> await client.subscribe("door-events", handler, property="hotel-1")
    >>> result = await client.call("pms:checkIn", {"room": 101}, property="hotel-1")
    >>> info = await client.stopped             # StopInfo(code=4001, reason="key_revoked", message=...)

    Requests made while the client is reconnecting wait for the connection within their timeout.
    Callbacks (``on_*``) and event handlers may be plain functions or coroutine functions.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        backoff: Backoff | None = None,
        request_timeout: float = 10.0,
        call_timeout: float = 30.0,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        stable_after: float = 10.0,
        max_message_bytes: int | None = 4 * 1024 * 1024,
        headers: Mapping[str, str] | None = None,
        on_connected: Callable[[Welcome], Any] | None = None,
        on_disconnected: Callable[[int | None, str, float], Any] | None = None,
        on_stopped: Callable[[StopInfo], Any] | None = None,
        on_expiry_warning: Callable[[str | None], Any] | None = None,
        on_permissions_changed: Callable[[PermissionsChanged], Any] | None = None,
        on_notice: Callable[[Mapping[str, Any]], Any] | None = None,
        on_error: Callable[[DoormanError], Any] | None = None,
        on_subscription_error: Callable[[Subscription, DoormanError], Any] | None = None,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``url``: ``ws://`` or ``wss://`` …``/ws``. ``key``: the device's API key, sent as ``X-API-Key``.

        ``backoff``: reconnect delays (default: full jitter from 0.5 s doubling to 60 s).
        ``request_timeout``: seconds for subscribe/unsubscribe/publish/ping; ``call_timeout`` for calls.
        ``stable_after``: a session that lasted this long resets the backoff.
        ``on_disconnected(code, reason, retry_in)``: a connection ended or an attempt failed (code is
        None when there was no close frame or no connection) and the next attempt is in ``retry_in`` s.
        ``on_stopped(info)``: the client stopped for good (``info.code`` 4001, ``info.reason`` "key_revoked",
        ``info.message`` "This device's key was revoked.").
        ``on_error(error)``: an error the server sent outside any request (e.g. message-rate ``rate_limited``).
        ``on_subscription_error(subscription, error)``: a resubscription after a reconnect was refused
        (the subscription is dropped).
        ``connect_options``: extra keyword arguments for ``websockets.asyncio.client.connect``.
        """
        if not key:
            raise ValueError("a key is required")
        self.url = url
        self._key = key
        self.backoff = backoff or Backoff()
        self.request_timeout = request_timeout
        self.call_timeout = call_timeout
        self.open_timeout = open_timeout
        self.stable_after = stable_after
        self._headers = {**(headers or {}), "X-API-Key": key}
        self._connect_options: dict[str, Any] = {
            "open_timeout": open_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "max_size": max_message_bytes,
            "user_agent_header": f"doorman-client-python/{__version__}",
            **(connect_options or {}),
        }
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.on_stopped = on_stopped
        self.on_expiry_warning = on_expiry_warning
        self.on_permissions_changed = on_permissions_changed
        self.on_notice = on_notice
        self.on_error = on_error
        self.on_subscription_error = on_subscription_error

        self._welcome: Welcome | None = None
        self._subs: dict[tuple[str, str | None], list[Handler]] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], ClientConnection]] = {}
        self._ws: ClientConnection | None = None
        self._ready_ws: ClientConnection | None = None
        self._notice: Mapping[str, Any] | None = None
        self._stop_info: StopInfo | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._stopped: asyncio.Future[StopInfo] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[Event | None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Connection attempts made (handshakes started), for tests and diagnostics.
        self.attempts = 0
        #: Sessions opened (welcomes received).
        self.sessions = 0

    # ------------------------------------------------------------------ state

    @property
    def welcome(self) -> Welcome | None:
        """The current session's welcome (rights updated by ``permissions_changed``); None before the first."""
        return self._welcome

    @property
    def connected(self) -> bool:
        """True while a session is open and its subscriptions are made."""
        return self._ready is not None and self._ready.is_set()

    @property
    def stop_info(self) -> StopInfo | None:
        """Why the client stopped, once it has."""
        return self._stop_info

    @property
    def stopped(self) -> "asyncio.Future[StopInfo]":
        """Resolves with a ``StopInfo`` when the client stops for good (revoked, expired, …, or ``close()``)."""
        self._bind()
        assert self._stopped is not None
        return self._stopped

    @property
    def subscriptions(self) -> list[Subscription]:
        return [Subscription(c, p) for (c, p) in self._subs]

    def _bind(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._ready = asyncio.Event()
            self._stop_event = asyncio.Event()
            self._stopped = self._loop.create_future()
            self._events = asyncio.Queue()
        return self._loop

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, wait: bool = True, timeout: float | None = None) -> Welcome | None:
        """Starts the session. With ``wait`` returns the welcome once connected (raises ``StoppedError``
        if the client stops first, e.g. a revoked key; ``RequestTimeoutError`` after ``timeout`` seconds,
        while the client keeps trying in the background)."""
        self._bind()
        if self._stop_info is not None:
            raise StoppedError(self._stop_info)
        if self._supervisor is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="doorman-dispatch")
            self._supervisor = asyncio.create_task(self._run(), name="doorman-connection")
        if not wait:
            return self._welcome
        await self.wait_connected(timeout)
        return self._welcome

    async def wait_connected(self, timeout: float | None = None) -> Welcome:
        """Waits until a session is open and resubscribed."""
        loop = self._bind()
        deadline = None if timeout is None else loop.time() + timeout
        await self._wait_ready(deadline)
        assert self._welcome is not None
        return self._welcome

    async def close(self) -> StopInfo:
        """Stops for good: closes the session, makes no more attempts. Returns why the client stopped
        (``reason == "closed_by_client"`` unless the server had stopped it first)."""
        self._bind()
        self._finish(StopInfo(code=1000, reason="closed_by_client", message="The application closed the client."))
        ws = self._ws
        if ws is not None:
            await ws.close()
        elif self._supervisor is not None and not self._supervisor.done():
            self._supervisor.cancel()           # mid-handshake (or asleep): do not wait for open_timeout
        if self._supervisor is not None:
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._dispatcher is not None:
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        assert self._stop_info is not None
        return self._stop_info

    async def __aenter__(self) -> "DoormanClient":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ requests

    async def subscribe(self, channel: str, handler: Handler, property: str | None = None, *, timeout: float | None = None) -> None:
        """Subscribes ``handler`` to events on ``channel`` (within ``property``); made again after every
        reconnect. Raises ``ForbiddenError`` etc. if the server refuses (the handler is then not kept)."""
        key = (channel, property)
        handlers = self._subs.setdefault(key, [])
        handlers.append(handler)
        try:
            await self._request(_with_property({"type": "subscribe", "channel": channel}, property), timeout or self.request_timeout)
        except BaseException:
            if handler in handlers:
                handlers.remove(handler)
            if not handlers and self._subs.get(key) is handlers:
                del self._subs[key]
            raise

    async def unsubscribe(self, channel: str, property: str | None = None, handler: Handler | None = None, *,
                          timeout: float | None = None) -> None:
        """Removes ``handler`` (or every handler) from ``channel``; the server subscription ends with the last."""
        key = (channel, property)
        handlers = self._subs.get(key)
        if handlers is None:
            return
        if handler is not None:
            if handler in handlers:
                handlers.remove(handler)
            if handlers:
                return
        del self._subs[key]
        if self.connected and self._stop_info is None:
            await self._request(_with_property({"type": "unsubscribe", "channel": channel}, property), timeout or self.request_timeout)

    async def publish(self, channel: str, data: Any, property: str | None = None, *, timeout: float | None = None) -> None:
        """Publishes ``data`` (any JSON value) on ``channel``; needs ``channel:publish.<channel>``."""
        await self._request(_with_property({"type": "publish", "channel": channel, "data": data}, property),
                            timeout or self.request_timeout)

    async def call(self, call: str, body: Any = None, property: str | None = None, *, timeout: float | None = None) -> CallResult:
        """Calls an upstream API (``"pms:checkIn"``) and returns its 2xx answer, or raises the typed error
        (``ForbiddenError``, ``RateLimitedError`` with ``retry_after``, ``UpstreamUnavailableError``,
        ``UpstreamStatusError``, …, ``RequestTimeoutError`` on the client's own timeout,
        ``ConnectionLostError`` if the connection ended mid-call: a call is never resent)."""
        message: dict[str, Any] = {"type": "call", "call": call}
        if body is not None:
            message["body"] = body
        answer = await self._request(_with_property(message, property), timeout or self.call_timeout)
        status = answer.get("status")
        encoding = answer.get("bodyEncoding")
        return CallResult(status=status if isinstance(status, int) else 200, body=answer.get("body"),
                          body_encoding=encoding if isinstance(encoding, str) else None, raw=answer)

    async def ping(self, *, timeout: float | None = None) -> float:
        """An application-level ping; returns the round trip in seconds."""
        started = time.monotonic()
        await self._request({"type": "ping"}, timeout or self.request_timeout)
        return time.monotonic() - started

    async def _wait_ready(self, deadline: float | None) -> ClientConnection:
        loop = self._bind()
        assert self._ready is not None and self._stop_event is not None
        while True:
            if self._stop_info is not None:
                raise StoppedError(self._stop_info)
            if self._ready.is_set() and self._ready_ws is not None:
                return self._ready_ws
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise RequestTimeoutError("not connected in time")
            waiters = [asyncio.ensure_future(self._ready.wait()), asyncio.ensure_future(self._stop_event.wait())]
            try:
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    async def _request(self, message: dict[str, Any], timeout: float, ws: ClientConnection | None = None) -> dict[str, Any]:
        loop = self._bind()
        deadline = loop.time() + timeout
        if ws is None:
            ws = await self._wait_ready(deadline)
        if self._stop_info is not None:
            raise StoppedError(self._stop_info)
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[request_id] = (future, ws)
        try:
            await ws.send(json.dumps({"id": request_id, **message}, separators=(",", ":")))
            return await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise RequestTimeoutError(f"no answer to {message.get('type')} within {timeout:g} s") from None
        except ConnectionClosed:
            if self._stop_info is not None:
                raise StoppedError(self._stop_info) from None
            raise ConnectionLostError() from None
        finally:
            self._pending.pop(request_id, None)

    # ------------------------------------------------------------------ the connection loop

    async def _run(self) -> None:
        attempt = 0
        immediate = 0
        assert self._stop_event is not None
        try:
            while self._stop_info is None:
                decision, code, reason, stable = await self._session()
                if self._stop_info is not None:
                    break
                if decision.action is Action.STOP:
                    self._finish(StopInfo(code=decision.code, reason=decision.reason, message=decision.message,
                                          http_status=decision.http_status))
                    break
                if stable:
                    attempt, immediate = 0, 0
                if decision.action is Action.NOW and immediate < MAX_IMMEDIATE_RECONNECTS:
                    immediate += 1
                    delay = 0.0
                elif decision.action is Action.PROMPT:
                    delay = self.backoff.delay(0)
                    attempt = 1
                elif decision.spread > 0:
                    # The server said when to come back (a suspend, a kick): that, plus jitter.
                    delay = decision.floor + decision.spread * self.backoff.rng()
                    attempt += 1
                else:
                    delay = decision.floor + self.backoff.delay(attempt)
                    attempt += 1
                log.info("doorman: connection ended (code %s %s); next attempt in %.2f s", code, reason, delay)
                self._emit(self.on_disconnected, code, reason, delay)
                try:
                    await asyncio.wait_for(self._stop_event.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        except Exception:  # a bug here must not leave the device silently dead: stop and say so
            log.exception("doorman: connection loop failed")
            self._finish(StopInfo(code=None, reason="client_error", message="The client failed; see the log."))

    async def _session(self) -> tuple[Decision, int | None, str, bool]:
        """One connection: handshake, welcome, resubscribe, read until it ends. Returns what to do next,
        the close code (or the HTTP status of a refused handshake), the reason, and whether it was stable."""
        self.attempts += 1
        try:
            ws = await ws_connect(self.url, additional_headers=self._headers, **self._connect_options)
        except InvalidStatus as e:
            response = e.response
            decision = handshake_decision(response.status_code, bytes(response.body or b""), response.headers)
            log.warning("doorman: handshake refused: HTTP %s %s", response.status_code, decision.reason)
            return decision, response.status_code, decision.reason, False
        except InvalidURI as e:
            return Decision(Action.STOP, reason="invalid_url", message=str(e)), None, "invalid_url", False
        except (OSError, asyncio.TimeoutError, InvalidHandshake, EOFError) as e:
            log.info("doorman: cannot connect: %s", e)
            return Decision(Action.BACKOFF), None, type(e).__name__, False

        self._ws = ws
        self._notice = None
        opened_at: float | None = None
        reader: asyncio.Task[None] | None = None
        try:
            if self._stop_info is not None:
                await ws.close()
                return Decision(Action.STOP), 1000, "closed_by_client", False
            first = json.loads(await asyncio.wait_for(ws.recv(), self.open_timeout))
            if not isinstance(first, dict) or first.get("type") != "welcome":
                if isinstance(first, dict) and first.get("type") == "notice":
                    self._handle(first, ws)
                    await asyncio.wait_for(ws.wait_closed(), self.open_timeout)
                else:
                    log.warning("doorman: the server did not start with a welcome")
                    await ws.close(1002, "expected a welcome")
            else:
                self._welcome = Welcome.from_message(first)
                self.sessions += 1
                reader = asyncio.create_task(self._read(ws), name="doorman-read")
                if await self._resubscribe(ws):
                    opened_at = time.monotonic()
                    self._ready_ws = ws
                    assert self._ready is not None
                    self._ready.set()
                    log.info("doorman: session %s open", self._welcome.session)
                    self._emit(self.on_connected, self._welcome)
                await reader
        except (ConnectionClosed, asyncio.TimeoutError, ValueError):
            if ws.protocol.close_rcvd is None:
                await ws.close()
        finally:
            assert self._ready is not None
            self._ready.clear()
            self._ready_ws = None
            self._ws = None
            if reader is not None and not reader.done():
                reader.cancel()
            self._fail_pending(ws)
        rcvd = ws.protocol.close_rcvd
        code = rcvd.code if rcvd is not None else None
        reason = rcvd.reason if rcvd is not None else ""
        stable = opened_at is not None and time.monotonic() - opened_at >= self.stable_after
        return close_decision(code, reason, self._notice), code, reason or (str(self._notice.get("reason")) if self._notice else ""), stable

    async def _resubscribe(self, ws: ClientConnection) -> bool:
        """Makes every subscription again on a new session. False if the session failed meanwhile."""
        subs = list(self._subs)
        if not subs:
            return True
        results = await asyncio.gather(
            *(self._request(_with_property({"type": "subscribe", "channel": c}, p), self.request_timeout, ws=ws) for (c, p) in subs),
            return_exceptions=True)
        for (channel, prop), result in zip(subs, results):
            if isinstance(result, (ConnectionLostError, StoppedError)):
                return False
            if isinstance(result, RequestTimeoutError):
                log.warning("doorman: resubscribing timed out; reconnecting")
                await ws.close()
                return False
            if isinstance(result, DoormanError):
                log.warning("doorman: resubscribing to %s (%s) refused: %s", channel, prop, result)
                self._subs.pop((channel, prop), None)
                self._emit(self.on_subscription_error, Subscription(channel, prop), result)
            elif isinstance(result, BaseException):
                raise result
        return True

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    log.warning("doorman: a message that is not JSON")
                    continue
                if isinstance(message, dict):
                    self._handle(message, ws)
        except ConnectionClosed:
            pass

    def _handle(self, m: dict[str, Any], ws: ClientConnection) -> None:
        kind = m.get("type")
        request_id = m.get("id")
        if kind in ("result", "error") and isinstance(request_id, int) and request_id in self._pending:
            future, _ = self._pending.pop(request_id)
            if not future.done():
                if kind == "result":
                    future.set_result(m)
                else:
                    future.set_exception(error_from_message(m))
        elif kind == "error":
            error = error_from_message(m)
            log.warning("doorman: server error: %s", error)
            self._emit(self.on_error, error)
        elif kind == "event":
            channel = m.get("channel")
            prop = m.get("property")
            if isinstance(channel, str) and self._events is not None:
                self._events.put_nowait(Event(channel, prop if isinstance(prop, str) else None, m.get("data")))
        elif kind == "notice":
            self._notice = m
            log.warning("doorman: notice: %s", m.get("message"))
            self._emit(self.on_notice, m)
        elif kind == "permissions_changed":
            change = PermissionsChanged.from_message(m)
            for sub in change.removed:
                self._subs.pop((sub.channel, sub.property), None)
            if self._welcome is not None:
                self._welcome = dataclasses.replace(
                    self._welcome, scopes=change.scopes, properties=change.properties, rules=change.rules,
                    expires_at=change.expires_at if "expiresAt" in m else self._welcome.expires_at)
            self._emit(self.on_permissions_changed, change)
        elif kind == "expiry_warning":
            expires = m.get("expiresAt")
            self._emit(self.on_expiry_warning, expires if isinstance(expires, str) else None)
        elif kind == "welcome":
            self._welcome = Welcome.from_message(m)

    def _fail_pending(self, ws: ClientConnection) -> None:
        for request_id, (future, owner) in list(self._pending.items()):
            if owner is ws:
                del self._pending[request_id]
                if not future.done():
                    future.set_exception(StoppedError(self._stop_info) if self._stop_info else ConnectionLostError())

    def _finish(self, info: StopInfo) -> None:
        if self._stop_info is not None:
            return
        self._stop_info = info
        if info.reason != "closed_by_client":
            log.warning("doorman: stopped for good: %s (%s)", info.message, info.reason)
        assert self._stop_event is not None and self._stopped is not None and self._events is not None
        self._stop_event.set()
        if not self._stopped.done():
            self._stopped.set_result(info)
        for request_id, (future, _) in list(self._pending.items()):
            del self._pending[request_id]
            if not future.done():
                future.set_exception(StoppedError(info))
        self._events.put_nowait(None)
        if info.reason != "closed_by_client":
            self._emit(self.on_stopped, info)

    # ------------------------------------------------------------------ callbacks

    async def _dispatch(self) -> None:
        assert self._events is not None
        while True:
            event = await self._events.get()
            if event is None:
                return
            for handler in list(self._subs.get((event.channel, event.property), ())):
                try:
                    outcome = handler(event)
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception:
                    log.exception("doorman: an event handler for %s failed", event.channel)

    def _emit(self, callback: Callback | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            outcome = callback(*args)
        except Exception:
            log.exception("doorman: callback %s failed", getattr(callback, "__name__", callback))
            return
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(outcome)
            self._tasks.add(task)
            task.add_done_callback(self._callback_done)

    def _callback_done(self, task: "asyncio.Future[Any]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("doorman: callback failed", exc_info=task.exception())


def _with_property(message: dict[str, Any], property: str | None) -> dict[str, Any]:
    if property is not None:
        message["property"] = property
    return message


async def connect(url: str, key: str, *, timeout: float | None = None, **options: Any) -> DoormanClient:
    """Creates a ``DoormanClient`` and waits for its first session (see ``DoormanClient.start``)."""
    client = DoormanClient(url, key, **options)
    try:
        await client.start(timeout=timeout)
    except BaseException:
        await client.close()
        raise
    return client
