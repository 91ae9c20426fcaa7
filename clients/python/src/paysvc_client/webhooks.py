"""Verify a webhook paysvc sent (brief section 7; the Standard Webhooks signature scheme).

    from paysvc_client.webhooks import Webhook
    event = Webhook(endpoint_secret).verify(request_body, request_headers)

The signature is ``v1,`` + base64 of HMAC-SHA256 over ``"{webhook-id}.{webhook-timestamp}.{body}"``,
keyed with the base64-decoded part of the ``whsec_…`` secret. During a secret rotation the header
carries several signatures separated by spaces; any one matching is enough. A timestamp further
than ``tolerance_s`` from now (either way) is refused, so a captured delivery cannot be replayed
later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

import msgspec

from paysvc_client import types as t
from paysvc_client._core import decode_event
from paysvc_client.errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
DEFAULT_TOLERANCE_S = 300


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from error


def sign(secret: str, webhook_id: str, timestamp_s: int, payload: bytes) -> str:
    """The ``v1,<base64>`` signature of ``payload`` (what paysvc puts in ``webhook-signature``)."""
    signed = f"{webhook_id}.{timestamp_s}.".encode() + payload
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class Webhook:
    """Verifies deliveries to one endpoint. ``secret`` is the endpoint's ``whsec_…`` secret, or
    several (the new and the old one during a rotation on the receiver's side)."""

    def __init__(self, secret: str | Sequence[str], *, tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
        secrets = [secret] if isinstance(secret, str) else list(secret)
        if not secrets:
            raise ValueError("at least one webhook secret is needed")
        self._keys = [_key(s) for s in secrets]
        self.tolerance_s = tolerance_s

    def verify(self, payload: bytes | str, headers: Mapping[str, str], *, now_s: float | None = None) -> t.Event:
        """The event, when ``headers`` carry a valid, fresh signature of ``payload`` (the raw body,
        byte for byte as received); else raises :class:`WebhookVerificationError`."""
        body = payload.encode() if isinstance(payload, str) else bytes(payload)
        lowered = {k.lower(): v for k, v in headers.items()}
        webhook_id = lowered.get("webhook-id")
        timestamp = lowered.get("webhook-timestamp")
        signatures = lowered.get("webhook-signature")
        if not webhook_id or not timestamp or not signatures:
            raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
        try:
            timestamp_s = int(timestamp)
        except ValueError as error:
            raise WebhookVerificationError("webhook-timestamp is not an integer") from error
        current_s = time.time() if now_s is None else now_s
        if timestamp_s < current_s - self.tolerance_s:
            raise WebhookVerificationError("webhook-timestamp is too old")
        if timestamp_s > current_s + self.tolerance_s:
            raise WebhookVerificationError("webhook-timestamp is too far in the future")

        signed = f"{webhook_id}.{timestamp}.".encode() + body
        expected = [base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()) for key in self._keys]
        for candidate in signatures.split(" "):
            version, _, value = candidate.partition(",")
            if version != "v1":
                continue
            given = value.encode()
            if any(hmac.compare_digest(given, e) for e in expected):
                break
        else:
            raise WebhookVerificationError("no matching signature")
        try:
            return decode_event(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise WebhookVerificationError(f"the signed body is not an event: {error}") from error


def verify(payload: bytes | str, headers: Mapping[str, str], secret: str | Sequence[str], *,
           tolerance_s: int = DEFAULT_TOLERANCE_S, now_s: float | None = None) -> t.Event:
    """``Webhook(secret, tolerance_s=…).verify(payload, headers)`` in one call."""
    return Webhook(secret, tolerance_s=tolerance_s).verify(payload, headers, now_s=now_s)
