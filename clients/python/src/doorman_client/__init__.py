# SPDX-License-Identifier: Apache-2.0
"""doorman_client: an asyncio client for Doorman's session protocol.

Connects with an API key (``X-API-Key``), exposes the welcome, subscribes, publishes and calls
upstream services with typed errors, reconnects with jittered exponential backoff, resubscribes,
and stops for good when the server ends the key (revoked, suspended, expired, rotated, …).
"""
from .client import DoormanClient, Handler, __version__, connect
from .errors import (ConnectionLostError, DoormanError, ForbiddenError, InvalidRequestError, RateLimitedError,
                     RequestTimeoutError, StopInfo, StoppedError, UnknownServiceError, UpstreamStatusError,
                     UpstreamTimeoutError, UpstreamUnavailableError)
from .models import CallResult, Event, PermissionsChanged, Subscription, Welcome
from .policy import Action, Backoff, Decision, close_decision, handshake_decision

__all__ = [
    "DoormanClient", "connect", "Handler", "__version__",
    "DoormanError", "ForbiddenError", "RateLimitedError", "UpstreamUnavailableError", "UpstreamTimeoutError",
    "UpstreamStatusError", "UnknownServiceError", "InvalidRequestError", "RequestTimeoutError",
    "ConnectionLostError", "StoppedError", "StopInfo",
    "CallResult", "Event", "PermissionsChanged", "Subscription", "Welcome",
    "Action", "Backoff", "Decision", "close_decision", "handshake_decision",
]
