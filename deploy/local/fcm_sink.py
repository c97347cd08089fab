#!/usr/bin/env python3
"""A local stand-in for FCM HTTP v1 for the demo stack: accepts POST /v1/projects/<p>/messages:send,
appends each message as one JSON line to $NOTIFY_FCM_SINK_FILE and answers like FCM ({"name": ...})."""
import json
import os
import random
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUT = os.environ.get("NOTIFY_FCM_SINK_FILE", "push.jsonl")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, {"status": "up"})
        self.reply(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "unknown path"}})

    def do_POST(self):
        parts = self.path.split("/")
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if len(parts) != 5 or parts[1] != "v1" or parts[2] != "projects" or parts[4] != "messages:send":
            return self.reply(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "unknown path"}})
        try:
            message = json.loads(body)["message"]
        except (ValueError, KeyError):
            return self.reply(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad body"}})
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(message) + "\n")
        self.reply(200, {"name": f"projects/{parts[3]}/messages/{random.getrandbits(63)}"})

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(os.environ.get("NOTIFY_FCM_SINK_PORT", "8099"))
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
