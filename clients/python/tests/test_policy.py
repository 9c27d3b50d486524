# SPDX-License-Identifier: Apache-2.0
"""Unit tests: backoff (bounded, jittered) and the close-code / handshake policy."""
from __future__ import annotations

import email.utils
import random
import statistics

import pytest

from doorman_client import Action, Backoff, close_decision, handshake_decision
from doorman_client.policy import THROTTLED_CLOSE_FLOOR, parse_retry_after


# ---------------------------------------------------------------- backoff

def test_backoff_caps_grow_exponentially_then_stay_bounded() -> None:
    b = Backoff(initial=0.5, max_delay=30, factor=2)
    assert [b.cap(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert b.cap(10_000) == 30          # no overflow after a month of failures
    assert b.cap(-3) == 0.5


def test_backoff_full_jitter_stays_within_zero_and_the_cap() -> None:
    b = Backoff(initial=0.5, max_delay=10, rng=random.Random(7).random)
    for attempt in range(40):
        for _ in range(200):
            d = b.delay(attempt)
            assert 0 <= d <= b.cap(attempt) <= 10


def test_backoff_is_jittered_not_constant() -> None:
    b = Backoff(initial=1, max_delay=8, rng=random.Random(1).random)
    delays = [b.delay(3) for _ in range(500)]
    assert len(set(delays)) > 450                      # spread, not one value
    assert min(delays) < 1 and max(delays) > 7         # covers [0, cap]
    assert 3.5 < statistics.mean(delays) < 4.5         # uniform: mean cap/2


def test_backoff_uses_its_random_source_and_can_be_deterministic() -> None:
    assert Backoff(initial=1, max_delay=8, rng=lambda: 0.25).delay(2) == 1.0
    assert Backoff(initial=1, max_delay=8, jitter=False).delay(2) == 4.0


@pytest.mark.parametrize("kwargs", [dict(initial=0), dict(initial=2, max_delay=1), dict(factor=0.5)])
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- close codes

@pytest.mark.parametrize("code,reason", [(4001, "key_revoked"), (4003, "key_expired"), (4004, "key_rotated"),
                                         (4006, "key_deleted"), (4008, "unknown_key"), (4000, "close_4000"), (4099, "close_4099")])
def test_4000_to_4099_stop_for_good(code: int, reason: str) -> None:
    d = close_decision(code, "")
    assert d.action is Action.STOP and d.code == code and d.reason == reason and d.message


def test_stop_uses_the_servers_notice_and_close_reason() -> None:
    notice = {"type": "notice", "reason": "key_revoked", "code": 4001, "reconnect": False, "message": "This device's key was revoked."}
    d = close_decision(4001, "key_revoked", notice)
    assert (d.action, d.code, d.reason, d.message) == (Action.STOP, 4001, "key_revoked", "This device's key was revoked.")
    assert close_decision(4001, "").message == "This device's key was revoked."


def test_a_stop_notice_stops_even_if_its_close_frame_was_lost() -> None:
    notice = {"type": "notice", "reason": "key_expired", "code": 4003, "reconnect": False, "message": "expired"}
    for code in (None, 1006, 1005):
        d = close_decision(code, "", notice)
        assert (d.action, d.code, d.reason) == (Action.STOP, 4003, "key_expired")
    # a notice that allows reconnecting does not stop
    assert close_decision(None, "", {"type": "notice", "code": 4129, "reconnect": True}).action is Action.BACKOFF


@pytest.mark.parametrize("code", [4100, 4129, 4199])
def test_4100_to_4199_back_off_with_a_floor(code: int) -> None:
    d = close_decision(code, "rate_limited")
    assert d.action is Action.BACKOFF and d.floor == THROTTLED_CLOSE_FLOOR > 0


@pytest.mark.parametrize("code,reason", [(4102, "key_suspended"), (4105, "user_disabled"), (4107, "killed_by_administrator")])
def test_a_suspend_a_disabled_user_or_a_kick_waits_the_servers_hint_plus_jitter(code: int, reason: str) -> None:
    notice = {"type": "notice", "reason": reason, "code": code, "reconnect": True, "retryAfterMs": 30000, "message": "…"}
    d = close_decision(code, reason, notice)
    assert (d.action, d.floor, d.spread, d.reason) == (Action.BACKOFF, 30.0, 30.0, reason)
    # without the hint: the usual throttled floor
    assert close_decision(code, reason).floor == THROTTLED_CLOSE_FLOOR


@pytest.mark.parametrize("code", [4200, 4250, 4299])
def test_4200_to_4299_reconnect_now(code: int) -> None:
    assert close_decision(code, "").action is Action.NOW


def test_1001_server_restart_reconnects_promptly() -> None:
    assert close_decision(1001, "server shutting down").action is Action.PROMPT


@pytest.mark.parametrize("code", [None, 1000, 1002, 1006, 1007, 1009, 1011, 1012, 1013, 3000, 4300, 4999])
def test_everything_else_backs_off(code: int | None) -> None:
    d = close_decision(code, "")
    assert d.action is Action.BACKOFF and d.floor == 0


# ---------------------------------------------------------------- refused handshakes

@pytest.mark.parametrize("error", ["revoked_key", "expired_key", "unknown_key", "malformed_key", "missing_key"])
def test_401_stops_with_the_reason_from_the_body(error: str) -> None:
    d = handshake_decision(401, f'{{"error":"{error}"}}'.encode(), {})
    assert (d.action, d.reason, d.http_status, d.code) == (Action.STOP, error, 401, None)
    assert d.message


@pytest.mark.parametrize("error", ["suspended_key", "user_disabled"])
def test_401_suspended_or_disabled_waits_retry_after_plus_jitter_and_never_stops(error: str) -> None:
    d = handshake_decision(401, f'{{"error":"{error}"}}'.encode(), {"Retry-After": "45"})
    assert (d.action, d.floor, d.spread, d.reason) == (Action.BACKOFF, 45.0, 45.0, error)
    assert handshake_decision(401, f'{{"error":"{error}"}}'.encode(), {}).floor == 30.0


def test_401_revoked_says_so() -> None:
    assert handshake_decision(401, b'{"error":"revoked_key"}', {}).message == "This device's key was revoked."
    assert handshake_decision(401, b"not json", {}).action is Action.STOP


def test_429_and_503_back_off_honoring_retry_after() -> None:
    d = handshake_decision(429, b'{"error":"too_many_sessions_for_key"}', {"Retry-After": "7"})
    assert (d.action, d.floor, d.reason) == (Action.BACKOFF, 7.0, "too_many_sessions_for_key")
    d = handshake_decision(503, b'{"error":"draining"}', {"Retry-After": "2"})
    assert (d.action, d.floor) == (Action.BACKOFF, 2.0)
    assert handshake_decision(503, b"", {}).floor == 1.0     # no hint: still not at once


def test_other_statuses_back_off() -> None:
    for status in (403, 404, 500, 502):
        assert handshake_decision(status, b"", {}).action is Action.BACKOFF
    assert handshake_decision(400, b'{"error":"conflicting_keys"}', {}).action is Action.STOP


def test_retry_after_parsing() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("") is None and parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30)
