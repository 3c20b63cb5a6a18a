"""An SMTP server for the notifier's e-mail tests: aiosmtpd (from PyPI) on 127.0.0.1,
keeping each message it receives as one JSON line for the test to check: the
envelope, the headers, and both bodies decoded by Python's own e-mail parser (an
implementation independent of lettre's).

usage: smtp.py LOG [CERT KEY] PORT_FILE
  CERT KEY: offer STARTTLS with this certificate and refuse mail sent without it.
"""
import email
import email.policy
import json
import socket
import ssl
import sys
import time

from aiosmtpd.controller import Controller

log_path, port_path = sys.argv[1], sys.argv[-1]
tls_files = sys.argv[2:-1]


class Keep:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
        line = {"envelope_from": envelope.mail_from, "envelope_to": envelope.rcpt_tos,
                "from": str(msg["From"]), "to": str(msg["To"]), "subject": str(msg["Subject"]),
                "message_id": str(msg["Message-ID"]), "content_type": msg.get_content_type(),
                "text": plain.get_content() if plain else None,
                "html": html.get_content() if html else None,
                "tls": session.ssl is not None}
        with open(log_path, "a") as log:
            log.write(json.dumps(line) + "\n")
        return "250 kept"


# A free port first: the controller needs one before it starts.
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
if tls_files:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    controller = Controller(Keep(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
else:
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
controller.start()
with open(port_path, "w") as f:
    f.write(str(port))
while True:
    time.sleep(3600)
