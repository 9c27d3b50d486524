# SPDX-License-Identifier: Apache-2.0
"""Typed errors. Every error the server answers a request with becomes a ``DoormanError`` whose
``code`` is the server's ``error`` string; the common ones have their own subclass so they can be
caught by type. Client-side failures (a timeout, a connection lost mid-request, a stopped client)
have their own codes too."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = [
    "DoormanError",
    "ForbiddenError",
    "RateLimitedError",
    "UpstreamUnavailableError",
    "UpstreamTimeoutError",
    "UpstreamStatusError",
    "UnknownServiceError",
    "InvalidRequestError",
    "RequestTimeoutError",
    "ConnectionLostError",
    "StoppedError",
    "StopInfo",
    "error_from_message",
]


@dataclass(frozen=True)
class StopInfo:
    """Why a client stopped for good.

    ``code`` is the WebSocket close code (4001 for a revoked key), None when the handshake was
    refused (then ``http_status`` is set, e.g. 401); ``reason`` is machine-readable
    ("key_revoked", or the refusal's "revoked_key"); ``message`` is for people
    ("This device's key was revoked.")."""

    code: int | None
    reason: str
    message: str
    http_status: int | None = None

    @property
    def by_client(self) -> bool:
        """True when the application itself closed the client."""
        return self.reason == "closed_by_client"


class DoormanError(Exception):
    """An error answer to a request, or a client-side failure of one.

    Attributes: ``code`` (the server's ``error``: "forbidden", "rate_limited", "upstream_unavailable", …
    or a client-side "timeout", "connection_lost", "stopped"), ``message``, ``reason`` (the server's
    finer reason, e.g. "denied_by_rule"), ``retry_after`` (seconds, when the server gave
    ``retryAfterMs``), ``status`` and ``body`` (for ``upstream_status``), ``raw`` (the whole message)."""

    def __init__(self, code: str, message: str = "", *, reason: str | None = None, retry_after: float | None = None,
                 status: int | None = None, body: Any = None, raw: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.reason = reason
        self.retry_after = retry_after
        self.status = status
        self.body = body
        self.raw: Mapping[str, Any] = raw or {}


class ForbiddenError(DoormanError):
    """The key may not do this (``reason``: not_permitted_for_user, denied_by_rule, …; ``rule`` names the rule)."""

    @property
    def rule(self) -> str | None:
        rule = self.raw.get("rule")
        return rule if isinstance(rule, str) else None


class RateLimitedError(DoormanError):
    """``rate_limited`` or ``too_many_calls``: try again after ``retry_after`` seconds."""


class UpstreamUnavailableError(DoormanError):
    """The upstream was refused, unreachable, or its circuit is open (``retry_after`` when known)."""


class UpstreamTimeoutError(DoormanError):
    """The upstream did not answer in time."""


class UpstreamStatusError(DoormanError):
    """The upstream answered non-2xx: ``status`` and ``body`` are its answer."""


class UnknownServiceError(DoormanError):
    """No upstream is configured for the call's service."""


class InvalidRequestError(DoormanError):
    """The request was malformed (``invalid_request``, ``invalid_channel``, ``invalid_message``, ``unknown_type``)."""


class RequestTimeoutError(DoormanError):
    """Client side: no answer (or no connection) within the request's timeout. code ``timeout``."""

    def __init__(self, message: str = "no answer in time") -> None:
        super().__init__("timeout", message)


class ConnectionLostError(DoormanError):
    """Client side: the connection ended after the request was sent and before its answer.
    A call may or may not have reached the upstream; it is not resent. code ``connection_lost``."""

    def __init__(self, message: str = "the connection ended before the answer") -> None:
        super().__init__("connection_lost", message)


class StoppedError(DoormanError):
    """Client side: the client has stopped for good (``info`` says why). code ``stopped``."""

    def __init__(self, info: StopInfo) -> None:
        super().__init__("stopped", info.message)
        self.info = info
        self.reason = info.reason


_BY_CODE: dict[str, type[DoormanError]] = {
    "forbidden": ForbiddenError,
    "rate_limited": RateLimitedError,
    "too_many_calls": RateLimitedError,
    "upstream_unavailable": UpstreamUnavailableError,
    "upstream_timeout": UpstreamTimeoutError,
    "upstream_status": UpstreamStatusError,
    "unknown_service": UnknownServiceError,
    "invalid_request": InvalidRequestError,
    "invalid_channel": InvalidRequestError,
    "invalid_message": InvalidRequestError,
    "unknown_type": InvalidRequestError,
}


def error_from_message(message: Mapping[str, Any]) -> DoormanError:
    """The typed error for a server ``{"type":"error",...}`` message."""
    code = message.get("error")
    code = code if isinstance(code, str) else "error"
    retry_ms = message.get("retryAfterMs")
    retry_after = retry_ms / 1000.0 if isinstance(retry_ms, (int, float)) and not isinstance(retry_ms, bool) else None
    status = message.get("status")
    reason = message.get("reason")
    text = message.get("message")
    cls = _BY_CODE.get(code, DoormanError)
    error = DoormanError.__new__(cls)
    DoormanError.__init__(error, code, text if isinstance(text, str) else "", reason=reason if isinstance(reason, str) else None,
                          retry_after=retry_after, status=status if isinstance(status, int) else None,
                          body=message.get("body"), raw=dict(message))
    return error
