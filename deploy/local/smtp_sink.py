#!/usr/bin/python3
# SMTP sink for local dev/tests: stores accepted mail in a Maildir, with an HTTP control port for fault injection.
"""
Run under Debian's /usr/bin/python3 (python3-aiosmtpd is installed there).

Environment:
  NOTIFY_SMTP_PORT          SMTP port on 127.0.0.1 (default 2525)
  NOTIFY_SMTP_CONTROL_PORT  HTTP control port on 127.0.0.1 (default NOTIFY_SMTP_PORT + 1)
  NOTIFY_SMTP_MAILDIR       Maildir for accepted messages (default ./mail)
  NOTIFY_SMTP_DISCARD=1     accept and count messages without writing them

Control API (plain text):
  GET    /mode      current mode: "ok" or the SMTP reply DATA answers with
  PUT    /mode      body "ok", "451", "550" or "NNN text": while not ok, DATA is
                    answered with that reply and nothing is stored
  GET    /count     number of messages accepted since start
  GET    /stored    number of message files currently in the Maildir
  DELETE /messages  empty the Maildir
  GET    /health    "ok"

Each stored message is the raw DATA as received (CRLF line endings kept),
preceded by "Return-Path: <mail from>" and "X-Original-To: <rcpt>, ..." headers.
"""

import asyncio
import http.server
import logging
import mailbox
import os
import re
import resource
import signal
import sys
import threading

from aiosmtpd.smtp import SMTP

DEFAULT_REPLIES = {
    "421": "421 4.3.2 Service not available",
    "450": "450 4.2.1 Mailbox busy",
    "451": "451 4.3.0 Try again later",
    "452": "452 4.3.1 Insufficient system storage",
    "550": "550 5.1.1 Mailbox unavailable",
    "552": "552 5.3.4 Message too big",
    "554": "554 5.6.0 Transaction failed",
}
REPLY_RE = re.compile(r"^[45][0-9][0-9]( .*)?$")


class State:
    def __init__(self, maildir_path, discard):
        self.mode = "ok"  # "ok" or a full SMTP reply line
        self.count = 0  # accepted messages since start (only the event loop thread writes it)
        self.discard = discard
        self.maildir_path = maildir_path
        self.maildir = mailbox.Maildir(maildir_path, create=True)
        # Maildir(create=True) only creates the subdirectories when the top directory is new
        self.ensure_dirs()

    def set_mode(self, text):
        text = text.strip()
        if text.lower() in ("", "ok", "250"):
            self.mode = "ok"
            return True
        text = DEFAULT_REPLIES.get(text, text)
        if not REPLY_RE.match(text):
            return False
        if len(text) == 3:
            text += " Error"
        self.mode = text
        return True

    def stored(self):
        self.ensure_dirs()
        n = 0
        for sub in ("new", "cur"):
            with os.scandir(os.path.join(self.maildir_path, sub)) as it:
                n += sum(1 for e in it if not e.name.startswith("."))
        return n

    def ensure_dirs(self):
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.maildir_path, sub), exist_ok=True)

    def clear(self):
        # tmp/ is left alone: a message being written there right now must not lose its file
        for sub in ("new", "cur"):
            with os.scandir(os.path.join(self.maildir_path, sub)) as it:
                for e in it:
                    try:
                        os.unlink(e.path)
                    except FileNotFoundError:
                        pass


class SinkHandler:
    def __init__(self, state):
        self.state = state

    async def handle_DATA(self, server, session, envelope):
        mode = self.state.mode
        if mode != "ok":
            return mode
        if not self.state.discard:
            content = envelope.original_content or envelope.content or b""
            if isinstance(content, str):
                content = content.encode("utf-8", "surrogateescape")
            rcpts = ", ".join(envelope.rcpt_tos)
            prefix = "Return-Path: <{}>\r\nX-Original-To: {}\r\n".format(
                envelope.mail_from or "", rcpts
            ).encode("utf-8", "surrogateescape")
            try:
                self.state.maildir.add(prefix + content)
            except FileNotFoundError:  # the Maildir was removed under us: recreate it
                self.state.ensure_dirs()
                self.state.maildir.add(prefix + content)
        self.state.count += 1
        return "250 2.0.0 OK"


def make_control_handler(state):
    class ControlHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # keep quiet
            pass

        def reply(self, code, text):
            body = (text + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def read_body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n).decode("utf-8", "replace") if n else ""

        def handle_one_request(self):
            try:
                super().handle_one_request()
            except Exception as e:  # answer instead of dropping the connection
                try:
                    self.reply(500, "error: {!r}".format(e))
                except Exception:
                    self.close_connection = True

        def do_GET(self):
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/mode":
                self.reply(200, state.mode)
            elif path == "/count":
                self.reply(200, str(state.count))
            elif path == "/stored":
                self.reply(200, str(state.stored()))
            elif path in ("", "/health"):
                self.reply(200, "ok")
            else:
                self.reply(404, "not found")

        def do_PUT(self):
            path = self.path.split("?", 1)[0].rstrip("/")
            body = self.read_body()
            if path != "/mode":
                self.reply(404, "not found")
            elif state.set_mode(body):
                self.reply(200, state.mode)
            else:
                self.reply(400, "mode must be 'ok' or an SMTP reply like '451 4.3.0 Try again later'")

        do_POST = do_PUT

        def do_DELETE(self):
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/messages":
                state.clear()
                self.reply(200, "ok")
            else:
                self.reply(404, "not found")

    return ControlHandler


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


async def main():
    port = int(os.environ.get("NOTIFY_SMTP_PORT", "2525"))
    control_port = int(os.environ.get("NOTIFY_SMTP_CONTROL_PORT", str(port + 1)))
    maildir = os.path.abspath(os.environ.get("NOTIFY_SMTP_MAILDIR", "mail"))
    discard = os.environ.get("NOTIFY_SMTP_DISCARD", "") not in ("", "0", "false", "no")

    state = State(maildir, discard)
    handler = SinkHandler(state)

    control = http.server.ThreadingHTTPServer(("127.0.0.1", control_port), make_control_handler(state))
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, name="control", daemon=True).start()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="localhost",  # avoids a getfqdn() lookup per connection
            ident="notify-smtp-sink",
            decode_data=False,
            enable_SMTPUTF8=True,
            data_size_limit=64 * 1024 * 1024,
            timeout=300,
        ),
        host="127.0.0.1",
        port=port,
        backlog=1024,
        reuse_address=True,
    )

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    print(
        "smtp_sink: smtp 127.0.0.1:{} control http://127.0.0.1:{} maildir {}{}".format(
            port, control_port, maildir, " (discard)" if discard else ""
        ),
        flush=True,
    )
    await stop.wait()
    server.close()
    control.shutdown()
    print("smtp_sink: stopped after accepting {} messages".format(state.count), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    raise_fd_limit()
    asyncio.run(main())
