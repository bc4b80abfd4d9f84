"""A real SMTP server for the alert function's email tests (aiosmtpd).

STARTTLS is required before anything else (and AUTH is only offered after
it), with the certificate given; AUTH PLAIN/LOGIN accepts one user. Every
message accepted is written to OUTDIR as <n>.json: whether the session was
TLS, who authenticated, the envelope and the raw message. RCPT answers by
the local part, as real servers do: refuse@... gets 550 (user unknown),
busy@... gets 451 (try again later) the first time, then is accepted.

usage: smtp_server.py PORT CERT KEY OUTDIR USER PASSWORD
Prints "ready" once it listens; runs until killed.
"""

import json
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, outdir, user, password = sys.argv[1:7]


class Handler:
    def __init__(self):
        self.busy = 0
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local == "refuse":
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if local == "busy" and self.busy == 0:
            self.busy += 1
            return "451 4.3.0 Temporary lookup failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        data = session.auth_data
        login = data.login.decode() if session.authenticated and isinstance(data, LoginPassword) else None
        record = {
            "tls": session.ssl is not None,
            "auth": login,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        path = os.path.join(outdir, "%d.json" % self.count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Ok: queued as %d" % self.count


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=int(port),
    tls_context=context,
    require_starttls=True,
    authenticator=authenticate,
    auth_require_tls=True,
    auth_required=False,
)
controller.start()
print("ready", flush=True)
threading.Event().wait()
