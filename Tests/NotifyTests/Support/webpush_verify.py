#!/usr/bin/env python3
"""Checks one Web Push request with implementations that are not ours: http_ece (RFC 8188/8291
aes128gcm) decrypts the body and py_vapid (RFC 8292) verifies the VAPID JWT.

Run with the tools venv (deploy/local/install-tools):

    .local/venv/bin/python Tests/NotifyTests/Support/webpush_verify.py < request.json

request.json:
    {"body_b64": standard base64 of the raw HTTP request body the push service received,
     "authorization": the Authorization header, "vapid t=<jwt>, k=<base64url uncompressed P-256 key>",
     "endpoint": the subscription endpoint URL the request was sent to,
     "ua_private_b64url": the subscriber's P-256 private key (raw 32-byte scalar, base64url),
     "auth_b64url": the subscriber's 16-byte auth secret (base64url)}

On success prints one JSON object:
    {"payload": the decrypted plaintext parsed as JSON, "claims": the JWT claims,
     "vapid_public_key": k, "record_size": rs, "salt_b64url": ..., "sender_public_key_b64url": keyid}
On any failure exits 1 with a one-line error on stderr.
"""
import base64
import binascii
import json
import re
import struct
import sys
import time
from urllib.parse import urlsplit

import http_ece
import py_vapid
import py_vapid.jwt
from cryptography.hazmat.primitives.asymmetric import ec

B64URL = re.compile(r"^[A-Za-z0-9_-]+$")  # base64url without padding, as RFC 7515 and RFC 8292 use it
MAX_EXP_AHEAD = 24 * 60 * 60  # RFC 8292 §2: exp MUST NOT be more than 24 hours from the time of the request


class Failure(Exception):
    pass


def b64url_decode(value, what):
    if not isinstance(value, str) or not B64URL.match(value):
        raise Failure(f"{what} is not unpadded base64url: {value!r:.80}")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise Failure(f"{what} is not base64url: {exc}")


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def field(request, name):
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise Failure(f"input field {name!r} missing or not a non-empty string")
    return value


def origin_of(endpoint):
    """RFC 6454 serialisation: scheme://host[:port], the port only when it is not the scheme's default."""
    parts = urlsplit(endpoint)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise Failure(f"endpoint is not an absolute http(s) URL: {endpoint!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise Failure(f"endpoint has a bad port: {endpoint!r}")
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def parse_vapid_header(authorization):
    """RFC 8292 §3: `vapid t=<jwt>, k=<key>`, auth-params separated by commas with optional whitespace
    (RFC 7235 §2.1), in any order. Returns (t, k)."""
    match = re.match(r"^\s*vapid\s+(.*)$", authorization, re.IGNORECASE | re.DOTALL)
    if not match:
        raise Failure(f"Authorization does not use the vapid scheme: {authorization!r:.80}")
    params = {}
    for item in match.group(1).split(","):
        item = item.strip()
        if "=" not in item:
            raise Failure(f"Authorization has a malformed auth-param: {item!r:.80}")
        name, value = item.split("=", 1)
        name = name.strip().lower()
        if name in params:
            raise Failure(f"Authorization repeats the {name!r} parameter")
        params[name] = value.strip()
    if set(params) != {"t", "k"}:
        raise Failure(f"Authorization must carry exactly t= and k=, got {sorted(params)}")
    return params["t"], params["k"]


def verify_vapid(authorization, endpoint):
    token, key = parse_vapid_header(authorization)
    raw_key = b64url_decode(key, "vapid k")
    if len(raw_key) != 65 or raw_key[0] != 4:
        raise Failure(f"vapid k is not an uncompressed P-256 point (65 octets starting 0x04), got {len(raw_key)} octets")
    segments = token.split(".")
    if len(segments) != 3:
        raise Failure(f"vapid t is not a JWS compact serialisation (3 parts), got {len(segments)}")
    for name, segment in zip(("header", "claims", "signature"), segments):
        b64url_decode(segment, f"JWT {name}")
    try:
        header = json.loads(b64url_decode(segments[0], "JWT header"))
    except ValueError as exc:
        raise Failure(f"JWT header is not JSON: {exc}")
    if not isinstance(header, dict) or header.get("alg") != "ES256":
        raise Failure(f"JWT header alg must be ES256, got {header!r:.80}")
    if len(b64url_decode(segments[2], "JWT signature")) != 64:
        raise Failure("JWT signature is not a 64-octet ES256 (r||s) signature")

    # py_vapid, twice: Vapid02.verify checks the header as a whole, py_vapid.jwt.decode checks the
    # signature again and returns the claims. Vapid02.verify splits the header on its last space and
    # the parameters on bare commas, so it only takes the `vapid t=...,k=...` form py_vapid itself
    # writes; the RFC's own `t=..., k=...` (comma, space) is handed to it in that form.
    try:
        ok = py_vapid.Vapid02.verify(f"vapid t={token},k={key}")
    except Exception as exc:  # malformed key or token inside py_vapid
        raise Failure(f"py_vapid could not verify the VAPID token: {exc!r}")
    if not ok:
        raise Failure("VAPID JWT signature does not verify with k (py_vapid.Vapid02.verify)")
    try:
        claims = py_vapid.jwt.decode(token, key)
    except Exception as exc:
        raise Failure(f"VAPID JWT signature does not verify with k (py_vapid.jwt.decode): {exc!r}")
    if not isinstance(claims, dict):
        raise Failure(f"JWT claims are not a JSON object: {claims!r:.80}")

    expected_aud = origin_of(endpoint)
    if claims.get("aud") != expected_aud:
        raise Failure(f"JWT aud {claims.get('aud')!r} is not the endpoint's origin {expected_aud!r}")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise Failure(f"JWT exp is not a NumericDate: {exp!r}")
    now = time.time()
    if exp <= now:
        raise Failure(f"JWT exp {exp} is not in the future (now {int(now)})")
    if exp > now + MAX_EXP_AHEAD:
        raise Failure(f"JWT exp {exp} is more than 24 h ahead (now {int(now)})")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not (sub.startswith("mailto:") or sub.startswith("https:")):
        raise Failure(f"JWT sub must be a mailto: or https: URI, got {sub!r}")
    return claims, key


def decrypt_body(body, ua_private_raw, auth_secret):
    # The aes128gcm header (RFC 8188 §2.1): salt(16) || rs(uint32) || idlen(uint8) || keyid(idlen).
    if len(body) < 21:
        raise Failure(f"body of {len(body)} octets is shorter than an aes128gcm header")
    salt = body[:16]
    (record_size,) = struct.unpack("!L", body[16:20])
    idlen = body[20]
    keyid = body[21 : 21 + idlen]
    ciphertext = body[21 + idlen :]
    # RFC 8291 §4: keyid is the sender's uncompressed P-256 point; one record only.
    if idlen != 65 or len(keyid) != 65 or keyid[0] != 4:
        raise Failure(f"keyid is not a 65-octet uncompressed P-256 point (idlen {idlen})")
    if record_size < 18:
        raise Failure(f"record size {record_size} is below the aes128gcm minimum of 18")
    if len(ciphertext) < 17:
        raise Failure(f"ciphertext of {len(ciphertext)} octets is shorter than tag + delimiter")
    if len(ciphertext) > record_size:
        raise Failure(f"ciphertext of {len(ciphertext)} octets spans more than one record of rs={record_size}")

    if len(ua_private_raw) != 32:
        raise Failure(f"ua_private is {len(ua_private_raw)} octets, not a raw 32-octet P-256 scalar")
    if len(auth_secret) != 16:
        raise Failure(f"auth secret is {len(auth_secret)} octets, not 16")
    try:
        private_key = ec.derive_private_key(int.from_bytes(ua_private_raw, "big"), ec.SECP256R1())
    except ValueError as exc:
        raise Failure(f"ua_private is not a valid P-256 scalar: {exc}")
    try:
        plaintext = http_ece.decrypt(body, private_key=private_key, auth_secret=auth_secret, version="aes128gcm")
    except http_ece.ECEException as exc:
        raise Failure(f"http_ece could not decrypt the body: {exc.message}")
    except Exception as exc:  # e.g. keyid not a point on the curve
        raise Failure(f"http_ece could not decrypt the body: {exc!r}")
    return plaintext, record_size, salt, keyid


def main():
    try:
        request = json.loads(sys.stdin.read())
    except ValueError as exc:
        raise Failure(f"stdin is not JSON: {exc}")
    if not isinstance(request, dict):
        raise Failure("stdin is not a JSON object")
    try:
        body = base64.b64decode(field(request, "body_b64"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Failure(f"body_b64 is not standard base64: {exc}")
    endpoint = field(request, "endpoint")
    ua_private = b64url_decode(field(request, "ua_private_b64url"), "ua_private_b64url")
    auth_secret = b64url_decode(field(request, "auth_b64url"), "auth_b64url")

    plaintext, record_size, salt, keyid = decrypt_body(body, ua_private, auth_secret)
    try:
        payload = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Failure(f"decrypted plaintext is not UTF-8 JSON: {exc}")
    claims, key = verify_vapid(field(request, "authorization"), endpoint)

    json.dump(
        {
            "payload": payload,
            "claims": claims,
            "vapid_public_key": key,
            "record_size": record_size,
            "salt_b64url": b64url_encode(salt),
            "sender_public_key_b64url": b64url_encode(keyid),
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main()
    except Failure as exc:
        print(f"webpush_verify: {exc}".replace("\n", " "), file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # anything unforeseen still fails with one line
        print(f"webpush_verify: unexpected error: {exc!r}".replace("\n", " "), file=sys.stderr)
        sys.exit(1)
