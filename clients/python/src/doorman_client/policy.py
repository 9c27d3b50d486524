# SPDX-License-Identifier: Apache-2.0
"""What to do after a connection ends or a handshake is refused: pure functions, no I/O.

Close codes (README "Close codes"): 4000-4099 stop for good, 4100-4199 back off and reconnect (a
suspend 4102, a disabled user 4105 or a kick 4107 after the notice's ``retryAfterMs`` plus up to as
much again), 4200-4299 reconnect now, 1001 (server shutting down) reconnect promptly, anything else
back off. Handshakes: 401 suspended_key and user_disabled wait ``Retry-After`` plus up to as much
again (an administrator may resume or enable), other 401s and 400 stop for good (the key or the
request will not fix itself), 429 and 503 back off honouring Retry-After, anything else backs off.
"""
from __future__ import annotations

import email.utils
import enum
import random
import time
from dataclasses import dataclass
from typing import Callable, Mapping

__all__ = [
    "Action",
    "Backoff",
    "Decision",
    "close_decision",
    "handshake_decision",
    "parse_retry_after",
    "STOP_MESSAGES",
]


class Action(enum.Enum):
    STOP = "stop"                # never reconnect with this key
    BACKOFF = "backoff"          # reconnect after an exponentially growing, jittered delay
    PROMPT = "prompt"            # the server restarted: reconnect soon (backoff from the first step)
    NOW = "now"                  # reconnect at once


@dataclass(frozen=True)
class Decision:
    action: Action
    #: The least delay in seconds before the next attempt (Retry-After, a throttling close).
    floor: float = 0.0
    #: When set, the delay is ``floor`` plus a uniform random part of up to this many seconds
    #: (instead of the exponential backoff): the server said when to come back.
    spread: float = 0.0
    #: For STOP: the machine-readable reason ("key_revoked", "revoked_key", ...) and a human message.
    reason: str = ""
    message: str = ""
    #: For STOP: the close code (4001, …) or the refused handshake's HTTP status.
    code: int | None = None
    http_status: int | None = None


#: What a device can show its user, by close code and by handshake refusal reason.
STOP_MESSAGES: dict[int | str, str] = {
    4001: "This device's key was revoked.",
    4003: "This device's key has expired.",
    4004: "This device's key was replaced; it needs the new key.",
    4006: "This device's key was deleted.",
    4008: "This device's key is not known to the server.",
    "revoked_key": "This device's key was revoked.",
    "suspended_key": "This device's key is suspended.",
    "expired_key": "This device's key has expired.",
    "unknown_key": "This device's key is not known to the server.",
    "malformed_key": "This device's key is malformed.",
    "missing_key": "No key was sent.",
    "user_disabled": "The account this device acts for is disabled.",
}

_CLOSE_REASONS = {
    4001: "key_revoked", 4003: "key_expired", 4004: "key_rotated", 4006: "key_deleted", 4008: "unknown_key",
}

#: The least delay after a 4100-4199 close that carried no Retry-After of its own.
THROTTLED_CLOSE_FLOOR = 1.0

#: Refused keys an administrator may bring back (resume, enable): wait and try again, never stop.
REVERSIBLE_REFUSALS = ("suspended_key", "user_disabled")
#: Seconds to wait on such a refusal without a Retry-After (the server's default).
REVERSIBLE_RETRY_DEFAULT = 30.0
#: The longest wait a server's hint may ask for; longer hints are cut to it.
MAX_RETRY_AFTER = 3600.0


@dataclass
class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
    the delay before attempt n (0-based) is uniform in [0, min(max_delay, initial * factor**n)].

    ``jitter=False`` gives the cap itself (deterministic; for tests and tools, not for fleets).
    """

    initial: float = 0.5
    max_delay: float = 60.0
    factor: float = 2.0
    jitter: bool = True
    rng: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.max_delay < self.initial or self.factor < 1:
            raise ValueError("backoff needs 0 < initial <= max_delay and factor >= 1")

    def cap(self, attempt: int) -> float:
        """The upper bound of the delay before attempt ``attempt`` (0-based)."""
        attempt = max(0, attempt)
        # Avoid float overflow for very long outages: past the cap, the cap.
        if attempt > 64:
            return self.max_delay
        return min(self.max_delay, self.initial * self.factor ** attempt)

    def delay(self, attempt: int) -> float:
        cap = self.cap(attempt)
        return cap * self.rng() if self.jitter else cap


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def close_decision(code: int | None, reason: str = "", notice: Mapping[str, object] | None = None) -> Decision:
    """What to do after the server closed (or the connection dropped: code None or 1006).

    ``notice`` is the last ``{"type":"notice",...}`` the server sent on this connection: a notice with
    ``"reconnect": false`` stops even if its close frame was lost on the way.
    """
    notice_code = notice.get("code") if notice else None
    if (code is None or code in (1005, 1006)) and notice is not None and notice.get("reconnect") is False:
        code = notice_code if isinstance(notice_code, int) else 4000
    if code is not None and 4000 <= code <= 4099:
        n_reason = notice.get("reason") if notice else None
        n_message = notice.get("message") if notice else None
        why = reason or (n_reason if isinstance(n_reason, str) else "") or _CLOSE_REASONS.get(code, f"close_{code}")
        text = n_message if isinstance(n_message, str) and n_message else STOP_MESSAGES.get(code, reason or "The server ended this session for good.")
        return Decision(Action.STOP, reason=why, message=text, code=code)
    if code is not None and 4100 <= code <= 4199:
        hint = notice.get("retryAfterMs") if notice else None
        if isinstance(hint, (int, float)) and not isinstance(hint, bool) and hint > 0:
            n_reason = notice.get("reason") if notice else None
            wait = min(hint / 1000, MAX_RETRY_AFTER)
            return Decision(Action.BACKOFF, floor=wait, spread=wait, reason=n_reason if isinstance(n_reason, str) else reason)
        return Decision(Action.BACKOFF, floor=THROTTLED_CLOSE_FLOOR)
    if code is not None and 4200 <= code <= 4299:
        return Decision(Action.NOW)
    if code == 1001:
        return Decision(Action.PROMPT)
    # 1000 (a server that closes normally still serves a device that wants to stay connected),
    # 1002/1007/1009 (a client bug: backing off keeps it from hammering), 1006 (network), 1011-1014,
    # 3000-3999 and unassigned 4300-4999: back off and try again.
    return Decision(Action.BACKOFF)


def handshake_decision(status: int, body: bytes | str | None, headers: Mapping[str, str] | None = None) -> Decision:
    """What to do after the server refused the WebSocket upgrade with an HTTP status."""
    reason = _json_error(body)
    retry_after = parse_retry_after((headers or {}).get("Retry-After")) if headers is not None else None
    if status == 401 and reason in REVERSIBLE_REFUSALS:
        wait = min(retry_after, MAX_RETRY_AFTER) if retry_after is not None and retry_after > 0 else REVERSIBLE_RETRY_DEFAULT
        return Decision(Action.BACKOFF, floor=wait, spread=wait, reason=reason, http_status=status)
    if status == 401:
        why = reason or "unauthorized"
        return Decision(Action.STOP, reason=why, message=STOP_MESSAGES.get(why, f"The server refused this device's key ({why})."),
                        http_status=status)
    if status == 400:
        why = reason or "bad_request"
        return Decision(Action.STOP, reason=why, message=f"The server refused the connection request ({why}).", http_status=status)
    if status in (429, 503):
        return Decision(Action.BACKOFF, floor=retry_after if retry_after is not None else 1.0, reason=reason or "")
    return Decision(Action.BACKOFF, floor=retry_after or 0.0, reason=reason or "")


def _json_error(body: bytes | str | None) -> str | None:
    import json

    if not body:
        return None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return str(value["error"])
    return None
