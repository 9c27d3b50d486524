# SPDX-License-Identifier: Apache-2.0
"""The server's messages as typed values."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Welcome", "Event", "PermissionsChanged", "CallResult", "Subscription"]


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Welcome:
    """The server's first message on every connection: who this session is and what it may do.
    ``scopes``, ``properties``, ``rules`` and ``expires_at`` follow ``permissions_changed``."""

    session: str
    user: Mapping[str, Any]
    key: Mapping[str, Any]
    scopes: list[str]
    properties: list[str]
    rules: list[str]
    expires_at: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def user_id(self) -> str | None:
        return _opt_str(self.user.get("id"))

    @property
    def key_id(self) -> str | None:
        return _opt_str(self.key.get("id"))

    @property
    def expiresAt(self) -> str | None:  # noqa: N802 - the wire's name, for readers of the protocol
        return self.expires_at

    @classmethod
    def from_message(cls, m: Mapping[str, Any]) -> "Welcome":
        user = m.get("user")
        key = m.get("key")
        session = m.get("session")
        return cls(session=str(session) if session is not None else "", user=user if isinstance(user, dict) else {},
                   key=key if isinstance(key, dict) else {}, scopes=_strings(m.get("scopes")),
                   properties=_strings(m.get("properties")), rules=_strings(m.get("rules")),
                   expires_at=_opt_str(m.get("expiresAt")), raw=dict(m))


@dataclass(frozen=True)
class Subscription:
    channel: str
    property: str | None = None


@dataclass(frozen=True)
class Event:
    """A published event on a channel this client subscribed to."""

    channel: str
    property: str | None
    data: Any


@dataclass(frozen=True)
class PermissionsChanged:
    """The key's or user's rights changed under a live session. ``removed`` are subscriptions the
    server dropped (the client forgets them too, so they are not made again on reconnect)."""

    scopes: list[str]
    properties: list[str]
    rules: list[str]
    expires_at: str | None
    removed: list[Subscription]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_message(cls, m: Mapping[str, Any]) -> "PermissionsChanged":
        removed = []
        for r in m.get("removedSubscriptions") or []:
            if isinstance(r, dict) and isinstance(r.get("channel"), str):
                removed.append(Subscription(r["channel"], _opt_str(r.get("property"))))
        return cls(scopes=_strings(m.get("scopes")), properties=_strings(m.get("properties")), rules=_strings(m.get("rules")),
                   expires_at=_opt_str(m.get("expiresAt")), removed=removed, raw=dict(m))


@dataclass(frozen=True)
class CallResult:
    """A 2xx answer of an upstream: ``status`` and ``body`` (JSON as JSON, text as str, other bytes
    as base64 text with ``body_encoding == "base64"``; ``content`` decodes that)."""

    status: int
    body: Any
    body_encoding: str | None = None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def content(self) -> Any:
        if self.body_encoding == "base64" and isinstance(self.body, str):
            import base64

            return base64.b64decode(self.body)
        return self.body
