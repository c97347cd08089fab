#!/usr/bin/env python3
"""A local stand-in for the push providers of the demo stack (standard library only):

- FCM's OAuth2 token endpoint, POST /token: form body grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer and
  assertion=<JWT>; the JWT must have three parts and a payload with iss, scope, aud and exp (its signature is not
  checked here); answers {"access_token": "dev-...", "expires_in": 3600, "token_type": "Bearer"}.
- FCM HTTP v1, POST /v1/projects/<p>/messages:send: requires `Authorization: Bearer <a token issued above>` (else 401
  with FCM's error JSON), appends each message as one JSON line to $NOTIFY_FCM_SINK_FILE and answers like FCM
  ({"name": ...}).
- A Web Push service (RFC 8030), POST /webpush/<id>: requires Content-Encoding: aes128gcm, TTL and a VAPID
  Authorization (`vapid t=...`), appends {"endpoint_id", "ttl", "urgency", "authorization", "body_b64"} as one JSON
  line to $NOTIFY_WEBPUSH_SINK_FILE and answers 201 Created with a Location.
- GET /health.
"""
import base64
import binascii
import json
import os
import random
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

OUT = os.environ.get("NOTIFY_FCM_SINK_FILE", "push.jsonl")
WEBPUSH_OUT = os.environ.get("NOTIFY_WEBPUSH_SINK_FILE", "webpush.jsonl")
TOKEN_LIFETIME = int(os.environ.get("NOTIFY_FCM_SINK_TOKEN_LIFETIME", "3600"))
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
URGENCIES = {"very-low", "low", "normal", "high"}
MAX_BODY = 1 << 20

LOCK = threading.Lock()
TOKENS = {}  # access token -> expiry (time.time())


def append_line(path, record):
    with LOCK, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def b64url_json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def fcm_error(code, status, message):
    return {"error": {"code": code, "message": message, "status": status}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.read_body()
        if urlsplit(self.path).path == "/health":
            return self.reply(200, {"status": "up"})
        self.reply(404, fcm_error(404, "NOT_FOUND", "unknown path"))

    def do_POST(self):
        body = self.read_body()
        if body is None:
            return self.reply(413, fcm_error(413, "INVALID_ARGUMENT", "body too large or unreadable"), close=True)
        path = urlsplit(self.path).path
        if path == "/token":
            return self.token(body)
        parts = path.split("/")
        if len(parts) == 3 and parts[1] == "webpush" and parts[2]:
            return self.webpush(parts[2], body)
        if len(parts) == 5 and parts[1] == "v1" and parts[2] == "projects" and parts[4] == "messages:send":
            return self.fcm_send(parts[3], body)
        self.reply(404, fcm_error(404, "NOT_FOUND", "unknown path"))

    # --- OAuth2 token endpoint -------------------------------------------------------------------------------------

    def token(self, body):
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != JWT_BEARER:
            return self.reply(400, {"error": "unsupported_grant_type", "error_description": f"Invalid grant_type: {grant_type}"})
        assertion = form.get("assertion", [""])[0]
        segments = assertion.split(".")
        if len(segments) != 3 or not all(segments):
            return self.reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT: assertion is not header.payload.signature"})
        try:
            claims = b64url_json(segments[1])
        except (ValueError, binascii.Error):
            return self.reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT: payload is not base64url JSON"})
        missing = [name for name in ("iss", "scope", "aud", "exp") if not isinstance(claims, dict) or name not in claims]
        if missing:
            return self.reply(400, {"error": "invalid_grant", "error_description": f"Invalid JWT: missing claims {', '.join(missing)}"})
        token = "dev-" + secrets.token_urlsafe(24)
        with LOCK:
            now = time.time()
            for old in [t for t, expiry in TOKENS.items() if expiry <= now]:
                del TOKENS[old]
            TOKENS[token] = now + TOKEN_LIFETIME
        self.reply(200, {"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"})

    # --- FCM HTTP v1 send ------------------------------------------------------------------------------------------

    def fcm_send(self, project, body):
        authorization = self.headers.get("Authorization", "")
        token = authorization[len("Bearer "):] if authorization.startswith("Bearer ") else ""
        with LOCK:
            valid = token.startswith("dev-") and TOKENS.get(token, 0) > time.time()
        if not valid:
            message = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                       "other valid authentication credential.")
            return self.reply(401, fcm_error(401, "UNAUTHENTICATED", message), {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        try:
            message = json.loads(body)["message"]
        except (ValueError, KeyError, TypeError):
            return self.reply(400, fcm_error(400, "INVALID_ARGUMENT", "bad body"))
        append_line(OUT, message)
        self.reply(200, {"name": f"projects/{project}/messages/{random.getrandbits(63)}"})

    # --- Web Push service ------------------------------------------------------------------------------------------

    def webpush(self, endpoint_id, body):
        def refuse(code, reason, message):
            self.reply(code, {"code": code, "error": reason, "message": message})

        encoding = self.headers.get("Content-Encoding", "")
        if encoding.strip().lower() != "aes128gcm":
            return refuse(400, "Bad Request", f"Content-Encoding must be aes128gcm, got {encoding!r}")
        ttl_header = self.headers.get("TTL")
        if ttl_header is None or not re.fullmatch(r"\d+", ttl_header.strip()):
            return refuse(400, "Bad Request", "TTL header (a non-negative integer) is required")
        urgency = self.headers.get("Urgency")
        if urgency is not None and urgency.strip().lower() not in URGENCIES:
            return refuse(400, "Bad Request", f"Urgency must be one of {sorted(URGENCIES)}")
        authorization = self.headers.get("Authorization", "")
        if not authorization.lower().startswith("vapid t="):
            return refuse(401, "Unauthorized", "a VAPID Authorization (vapid t=..., k=...) is required")
        if not body:
            return refuse(400, "Bad Request", "an aes128gcm body is required")
        append_line(WEBPUSH_OUT, {
            "endpoint_id": endpoint_id,
            "ttl": int(ttl_header.strip()),
            "urgency": urgency.strip().lower() if urgency is not None else None,
            "authorization": authorization,
            "body_b64": base64.b64encode(body).decode("ascii"),
        })
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        location = f"http://{host}/message/{secrets.token_urlsafe(12)}"
        self.reply(201, None, {"Location": location, "TTL": ttl_header.strip()})

    # --- plumbing --------------------------------------------------------------------------------------------------

    def read_body(self):
        """The request body (Content-Length or chunked), or None if it is too large or malformed."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks, total = [], 0
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    total += size
                    if total > MAX_BODY:
                        return None
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length", "0"))
            if length < 0 or length > MAX_BODY:
                return None
            return self.rfile.read(length)
        except ValueError:
            return None

    def reply(self, status, payload, headers=None, close=False):
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(os.environ.get("NOTIFY_FCM_SINK_PORT", "8099"))
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
