#!/usr/bin/python3
"""A TLS-capable SMTP server with AUTH for the email tests (run under Debian's /usr/bin/python3, which has aiosmtpd).

Usage: tls_smtp.py MODE PORT CERT KEY USER PASSWORD EVENTS
  MODE  starttls  plain session that offers STARTTLS (and AUTH, even before TLS: the client must not use it there)
        implicit  TLS from the first byte (smtps)
        plain     no TLS at all, AUTH offered in clear (a server, or an attacker, that hides STARTTLS)
EVENTS is a file of JSON lines the server appends to: {"event": "listening"}, {"event": "auth", "tls": bool,
"user": ..., "ok": bool} for every AUTH attempt (whether the credentials travelled inside TLS), and
{"event": "message", "tls": bool, "authenticated": bool, "mail_from": ..., "rcpt_tos": [...], "data": ...}.
"""

import asyncio
import json
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

mode, port, cert, key, user, password, events_path = sys.argv[1:8]
port = int(port)


def record(event):
    with open(events_path, "a", encoding="utf-8") as events:
        events.write(json.dumps(event) + "\n")


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


class Handler:
    def __init__(self, implicit):
        self.implicit = implicit

    async def handle_DATA(self, server, session, envelope):
        record(
            {
                "event": "message",
                "tls": self.implicit or session.ssl is not None,
                "authenticated": bool(session.authenticated),
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "data": envelope.original_content.decode("utf-8", "replace"),
            }
        )
        return "250 2.0.0 OK"


def authenticator(implicit):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        given_user = auth_data.login.decode("utf-8", "replace")
        ok = given_user == user and auth_data.password.decode("utf-8", "replace") == password
        record({"event": "auth", "tls": implicit or session.ssl is not None, "user": given_user, "ok": ok})
        return AuthResult(success=ok)

    return check


async def main():
    implicit = mode == "implicit"
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(
            Handler(implicit),
            hostname="localhost",
            tls_context=context() if mode == "starttls" else None,
            require_starttls=False,
            auth_require_tls=False,
            authenticator=authenticator(implicit),
            decode_data=False,
        )

    server = await loop.create_server(
        factory, host="127.0.0.1", port=port, ssl=context() if implicit else None, reuse_address=True
    )
    record({"event": "listening"})
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


asyncio.run(main())
