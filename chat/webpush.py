"""Web Push without a relay of our own (RFC 8030 push, RFC 8291 aes128gcm message
encryption, RFC 8292 VAPID), on the `cryptography` primitives.

The VAPID key pair is made once and kept in the database (chat.models.PushKey) unless
PARLEY_VAPID_PRIVATE_KEY gives one (PEM, or the base64url of the 32-byte private number).
"""

import base64
import json
import os
import struct
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError

RECORD_SIZE = 4096
TIMEOUT = 10


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _load_private(text: str) -> ec.EllipticCurvePrivateKey:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
    else:
        key = ec.derive_private_key(int.from_bytes(b64url_decode(text), "big"), ec.SECP256R1())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("PARLEY_VAPID_PRIVATE_KEY must be a P-256 private key")
    return key


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def vapid_private_key() -> ec.EllipticCurvePrivateKey:
    configured = getattr(settings, "PARLEY_VAPID_PRIVATE_KEY", "")
    if configured:
        return _load_private(configured)
    from chat.models import PushKey

    row = PushKey.objects.filter(pk=PushKey.SINGLETON_ID).first()
    if row is None:
        try:
            row = PushKey.objects.create(pk=PushKey.SINGLETON_ID, private_pem=_pem(ec.generate_private_key(ec.SECP256R1())))
        except IntegrityError:  # another process made it first
            row = PushKey.objects.get(pk=PushKey.SINGLETON_ID)
    return _load_private(row.private_pem)


def public_point(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def vapid_public_key() -> str:
    """The application server key a browser subscribes with: base64url of the 65-byte point."""
    return b64url(public_point(vapid_private_key()))


def vapid_authorization(endpoint: str, key: ec.EllipticCurvePrivateKey) -> str:
    parts = urlsplit(endpoint)
    claims = {"aud": f"{parts.scheme}://{parts.netloc}", "exp": int(time.time()) + 12 * 3600, "sub": settings.PARLEY_PUSH_SUBJECT}
    signing_input = f"{b64url(json.dumps({'typ': 'JWT', 'alg': 'ES256'}).encode())}.{b64url(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    token = f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    return f"vapid t={token}, k={b64url(public_point(key))}"


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def encrypt(plaintext: bytes, *, p256dh: str, auth: str, salt: bytes | None = None) -> bytes:
    """RFC 8291: one aes128gcm record for the subscription's keys."""
    ua_public = b64url_decode(p256dh)
    auth_secret = b64url_decode(auth)
    local = ec.generate_private_key(ec.SECP256R1())
    as_public = public_point(local)
    shared = local.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public))
    ikm = _hkdf(auth_secret, shared, b"WebPush: info\x00" + ua_public + as_public, 32)
    salt = salt or os.urandom(16)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    if len(plaintext) + 17 > RECORD_SIZE:
        raise ValueError("push payload too large for one record")
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    return salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public + ciphertext


def decrypt(body: bytes, *, private_key: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """The receiving side of `encrypt` (what a browser does; the tests use it)."""
    salt, (_rs, idlen) = body[:16], struct.unpack("!IB", body[16:21])
    as_public, ciphertext = body[21 : 21 + idlen], body[21 + idlen :]
    ua_public = public_point(private_key)
    shared = private_key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public))
    ikm = _hkdf(auth, shared, b"WebPush: info\x00" + ua_public + as_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    plain = AESGCM(cek).decrypt(nonce, ciphertext, None)
    return plain.rstrip(b"\x00")[:-1]


def send(endpoint: str, payload: dict, *, p256dh: str, auth: str, key=None, ttl: int = 86400) -> int:
    """POST one encrypted push; returns the push service's HTTP status (0: unreachable)."""
    key = key or vapid_private_key()
    body = encrypt(json.dumps(payload, ensure_ascii=False).encode(), p256dh=p256dh, auth=auth)
    request = urllib.request.Request(
        endpoint,
        data=body,
        method="POST",
        headers={
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(ttl),
            "Urgency": "high",
            "Authorization": vapid_authorization(endpoint, key),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
