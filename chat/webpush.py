"""Web Push without a relay of our own: pywebpush encrypts (RFC 8291 aes128gcm, through
http_ece) and posts (RFC 8030); py-vapid signs (RFC 8292 VAPID).

The VAPID key pair is made once and kept in the database (chat.models.PushKey) unless
PARLEY_VAPID_PRIVATE_KEY gives one (PEM, or the base64url of the 32-byte private number).
"""

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import IntegrityError
from py_vapid import Vapid
from py_vapid.utils import b64urldecode, b64urlencode
from pywebpush import WebPushException, webpush

TIMEOUT = 10
TTL_SECONDS = 86400


def b64url_decode(text: str) -> bytes:
    return b64urldecode(text.encode())


def _load(text: str) -> Vapid:
    text = text.strip()
    vapid = Vapid.from_pem(text.encode()) if text.startswith("-----BEGIN") else Vapid.from_string(text)
    key = vapid.private_key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("PARLEY_VAPID_PRIVATE_KEY must be a P-256 private key")
    return vapid


def vapid() -> Vapid:
    configured = getattr(settings, "PARLEY_VAPID_PRIVATE_KEY", "")
    if configured:
        return _load(configured)
    from chat.models import PushKey

    row = PushKey.objects.filter(pk=PushKey.SINGLETON_ID).first()
    if row is None:
        made = Vapid()
        made.generate_keys()
        try:
            row = PushKey.objects.create(pk=PushKey.SINGLETON_ID, private_pem=made.private_pem().decode())
        except IntegrityError:  # another process made it first
            row = PushKey.objects.get(pk=PushKey.SINGLETON_ID)
    return _load(row.private_pem)


def vapid_public_key() -> str:
    """The application server key a browser subscribes with: base64url of the 65-byte point."""
    point = vapid().public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64urlencode(point)


def send(endpoint: str, payload: dict, *, p256dh: str, auth: str, key: Vapid | None = None, ttl: int = TTL_SECONDS) -> int:
    """POST one encrypted push; returns the push service's HTTP status (0: no answer).
    Network errors (unreachable, TLS, timeout) are raised for the caller to record."""
    try:
        response = webpush(
            {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
            json.dumps(payload, ensure_ascii=False),
            vapid_private_key=key or vapid(),
            # pywebpush fills in `aud` from the endpoint and `exp`; a fresh dict each time
            # because it writes them into the one it is given.
            vapid_claims={"sub": settings.PARLEY_PUSH_SUBJECT},
            ttl=ttl,
            headers={"Urgency": "high"},
            timeout=TIMEOUT,
        )
    except WebPushException as error:
        return error.status_code or 0
    return response.status_code
