#!/usr/bin/env python3
"""A local stand-in for the email providers' HTTP APIs (standard library only), for the demo stack and benchmarks:

- SendGrid v3, POST /v3/mail/send: requires `Authorization: Bearer $NOTIFY_EMAIL_API_SINK_KEY`, a JSON body with
  personalizations[].to[].email, from.email, subject and content[]; answers 202 with an X-Message-Id.
- Mailgun, POST /v3/<domain>/messages: requires HTTP Basic api:$NOTIFY_EMAIL_API_SINK_KEY and the form fields from,
  to, subject and text or html; answers 200 {"id": "<...>", "message": "Queued. Thank you."}.
- GET /count: messages accepted so far; GET /health.
Accepted messages are appended as JSON lines to $NOTIFY_EMAIL_API_SINK_FILE when it is set (counted only otherwise).
Port: $NOTIFY_EMAIL_API_SINK_PORT (default 8098).
"""
import base64
import json
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

KEY = os.environ.get("NOTIFY_EMAIL_API_SINK_KEY", "dev-email-api-key")
OUT = os.environ.get("NOTIFY_EMAIL_API_SINK_FILE")
LOCK = threading.Lock()
COUNT = [0]


def accept(record):
    with LOCK:
        COUNT[0] += 1
        if OUT:
            with open(OUT, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def json(self, code, obj, headers=()):
        self.reply(code, json.dumps(obj).encode(), [("Content-Type", "application/json")] + list(headers))

    def do_GET(self):
        if self.path == "/count":
            self.reply(200, str(COUNT[0]).encode())
        elif self.path == "/health":
            self.reply(200, b"ok")
        else:
            self.reply(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/v3/mail/send":
            return self.sendgrid(body)
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "v3" and parts[2] == "messages":
            return self.mailgun(parts[1], body)
        self.reply(404)

    def sendgrid(self, body):
        if self.headers.get("Authorization") != "Bearer " + KEY:
            return self.json(401, {"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked"}]})
        try:
            mail = json.loads(body)
            to = [p["email"] for personalization in mail["personalizations"] for p in personalization["to"]]
            assert to and mail["from"]["email"] and mail["subject"] and mail["content"]
        except Exception:
            return self.json(400, {"errors": [{"message": "Bad Request", "field": None}]})
        message_id = secrets.token_urlsafe(16)
        accept({"provider": "sendgrid", "id": message_id, "to": to, "subject": mail["subject"]})
        self.reply(202, headers=[("X-Message-Id", message_id)])

    def mailgun(self, domain, body):
        expected = "Basic " + base64.b64encode(("api:" + KEY).encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self.reply(401, b"Forbidden")
        form = parse_qs(body.decode("utf-8", "replace"))
        for field in ("from", "to", "subject"):
            if not form.get(field):
                return self.json(400, {"message": "'%s' parameter is missing" % field})
        if not form.get("text") and not form.get("html"):
            return self.json(400, {"message": "Need at least one of 'text' or 'html' parameters specified"})
        message_id = "<%s@%s>" % (secrets.token_hex(12), domain)
        accept({"provider": "mailgun", "id": message_id, "to": form["to"], "subject": form["subject"][0]})
        self.json(200, {"id": message_id, "message": "Queued. Thank you."})


if __name__ == "__main__":
    port = int(os.environ.get("NOTIFY_EMAIL_API_SINK_PORT", "8098"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    print("email_api_sink: http://127.0.0.1:%d" % port, flush=True)
    server.serve_forever()
