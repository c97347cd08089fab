#!/usr/bin/python3
# SMTP sink for local dev/tests: stores accepted mail in a Maildir, with an HTTP control port for fault injection.
"""
An SMTP server (RFC 5321, with PIPELINING, SIZE, 8BITMIME and SMTPUTF8) written on asyncio's protocol layer, standard
library only. Run under /usr/bin/python3 like the other local servers.

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
import os
import re
import resource
import signal
import sys
import threading
import time


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
# "FROM:<a@b> SIZE=123" / "TO:<a@b>": the keyword, the path (empty for a null reverse path), the parameters.
PATH_RE = re.compile(r"^\s*(FROM|TO)\s*:\s*<([^<>]*)>\s*(.*)$", re.IGNORECASE)
SIZE_RE = re.compile(r"(?:^|\s)SIZE=([0-9]+)", re.IGNORECASE)
SIZE_LIMIT = 64 * 1024 * 1024
COMMAND_LIMIT = 4096
IDLE_SECONDS = 300
EHLO_REPLY = (
    b"250-localhost\r\n250-SIZE 67108864\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n"
    b"250 HELP\r\n"
)


class State:
    def __init__(self, maildir_path, discard):
        self.mode = "ok"  # "ok" or a full SMTP reply line
        self.count = 0  # accepted messages since start (only the event loop thread writes it)
        self.discard = discard
        self.maildir_path = maildir_path
        self.serial = 0
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

    def accept(self, mail_from, rcpts, content):
        """The reply to a message that ended: the injected fault, or stored (unless discarding) and counted."""
        mode = self.mode
        if mode != "ok":
            return mode.encode("utf-8", "surrogateescape") + b"\r\n"
        if not self.discard:
            prefix = "Return-Path: <{}>\r\nX-Original-To: {}\r\n".format(mail_from or "", ", ".join(rcpts))
            self.deliver(prefix.encode("utf-8", "surrogateescape") + content)
        self.count += 1
        return b"250 2.0.0 OK\r\n"

    def deliver(self, message):
        """Maildir delivery: written under tmp/, then renamed into new/ (readers never see half a file)."""
        self.serial += 1
        now = time.time()
        name = "{}.M{}P{}Q{}.localhost".format(int(now), int((now % 1) * 1e6), os.getpid(), self.serial)
        tmp = os.path.join(self.maildir_path, "tmp", name)
        for _ in range(2):
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileNotFoundError:  # the Maildir was removed under us: recreate it
                self.ensure_dirs()
        else:
            raise OSError("cannot create " + tmp)
        try:
            view = memoryview(message)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.maildir_path, "new", name))

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


class Session(asyncio.Protocol):
    """One SMTP connection (RFC 5321): EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, VRFY, HELP, QUIT, with PIPELINING
    (RFC 2920: every complete command in a read is answered, in order, in one write), SIZE, 8BITMIME and SMTPUTF8.
    A plain asyncio protocol: a message costs a fraction of what aiosmtpd's per-line coroutines did, so the sink takes
    less of the machine the platform is measured on. No STARTTLS or AUTH (the TLS tests run their own server)."""

    def __init__(self, state, sessions):
        self.state = state
        self.sessions = sessions
        self.transport = None
        self.buffer = bytearray()
        self.greeted = False
        self.mail_from = None
        self.rcpts = []
        self.body = None  # a bytearray while DATA is being received
        self.searched = 0  # how far the body was searched for the end marker
        self.oversized = False  # the message outgrew SIZE_LIMIT: it is read to its end and refused
        self.last_seen = 0.0

    def connection_made(self, transport):
        self.transport = transport
        self.sessions.add(self)
        self.last_seen = time.monotonic()
        transport.write(b"220 localhost notify-smtp-sink ESMTP ready\r\n")

    def connection_lost(self, exc):
        self.sessions.discard(self)

    def data_received(self, data):
        self.last_seen = time.monotonic()
        self.buffer += data
        out = []
        while self.transport is not None and not self.transport.is_closing():
            if self.body is not None:
                if not self.take_body(out):
                    break
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                if len(self.buffer) > COMMAND_LIMIT:
                    self.buffer.clear()
                    out.append(b"500 5.5.2 Line too long\r\n")
                break
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            if len(line) > COMMAND_LIMIT:
                out.append(b"500 5.5.2 Line too long\r\n")
                continue
            reply = self.command(line)
            if reply is not None:
                out.append(reply)
            if reply is not None and reply.startswith(b"221"):
                self.transport.write(b"".join(out))
                self.transport.close()
                return
        if out:
            self.transport.write(b"".join(out))

    def take_body(self, out):
        """Moves received bytes into the message; True once the message ended (and was answered)."""
        body = self.body
        body += self.buffer
        self.buffer.clear()
        if not self.oversized and body.startswith(b".\r\n"):
            end, rest = 0, 3  # an empty message (not the tail kept of an oversized one)
        else:
            end = body.find(b"\r\n.\r\n", max(0, self.searched - 4))
            if end < 0:
                self.searched = len(body)
                if len(body) > SIZE_LIMIT + 65536:
                    # Far beyond the limit: stop keeping it, only look for its end.
                    del body[: len(body) - 8]
                    self.searched = 0
                    self.oversized = True
                return False
            end, rest = end + 2, end + 5
        self.buffer = bytearray(body[rest:])
        content = bytes(body[:end])
        self.body = None
        self.searched = 0
        oversized = self.oversized or len(content) > SIZE_LIMIT
        self.oversized = False
        # Transparency (RFC 5321 4.5.2): a line that starts with a dot had one more added by the client.
        if content.startswith(b".."):
            content = content[1:]
        content = content.replace(b"\r\n..", b"\r\n.")
        if oversized:
            out.append(b"552 5.3.4 Message too big\r\n")
        else:
            out.append(self.state.accept(self.mail_from, self.rcpts, content))
        self.mail_from = None
        self.rcpts = []
        return True

    def command(self, line):
        text = line.decode("utf-8", "surrogateescape")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb == "EHLO" or verb == "HELO":
            if not arg.strip():
                return b"501 5.5.4 Syntax: " + verb.encode() + b" hostname\r\n"
            self.greeted = True
            self.mail_from = None
            self.rcpts = []
            if verb == "HELO":
                return b"250 localhost\r\n"
            return EHLO_REPLY
        if verb == "NOOP":
            return b"250 2.0.0 OK\r\n"
        if verb == "QUIT":
            return b"221 2.0.0 Bye\r\n"
        if verb == "RSET":
            self.mail_from = None
            self.rcpts = []
            return b"250 2.0.0 OK\r\n"
        if verb == "VRFY":
            return b"252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
        if verb == "HELP":
            return b"250 Supported commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n"
        if verb == "MAIL":
            if not self.greeted:
                return b"503 5.5.1 Error: send HELO first\r\n"
            if self.mail_from is not None:
                return b"503 5.5.1 Error: nested MAIL command\r\n"
            path = PATH_RE.match(arg)
            if path is None or path.group(1).upper() != "FROM":
                return b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
            size = SIZE_RE.search(path.group(3) or "")
            if size is not None and int(size.group(1)) > SIZE_LIMIT:
                return b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"
            self.mail_from = path.group(2)
            return b"250 2.1.0 OK\r\n"
        if verb == "RCPT":
            if self.mail_from is None:
                return b"503 5.5.1 Error: need MAIL command\r\n"
            path = PATH_RE.match(arg)
            if path is None or path.group(1).upper() != "TO" or not path.group(2):
                return b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"
            self.rcpts.append(path.group(2))
            return b"250 2.1.5 OK\r\n"
        if verb == "DATA":
            if arg:
                return b"501 5.5.4 Syntax: DATA\r\n"
            if not self.rcpts:
                return b"503 5.5.1 Error: need RCPT command\r\n"
            self.body = bytearray()
            self.searched = 0
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if not verb:
            return b"500 5.5.2 Error: bad syntax\r\n"
        return b"500 5.5.1 Error: command not recognized\r\n"


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
    sessions = set()

    control = http.server.ThreadingHTTPServer(("127.0.0.1", control_port), make_control_handler(state))
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, name="control", daemon=True).start()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Session(state, sessions),
        host="127.0.0.1",
        port=port,
        backlog=1024,
        reuse_address=True,
    )

    def close_idle():
        # A connection silent for IDLE_SECONDS is closed, as an MTA's timeouts would.
        cutoff = time.monotonic() - IDLE_SECONDS
        for session in [s for s in sessions if s.last_seen < cutoff]:
            session.transport.write(b"421 4.4.2 Timeout, closing\r\n")
            session.transport.close()
        loop.call_later(30, close_idle)

    loop.call_later(30, close_idle)
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
