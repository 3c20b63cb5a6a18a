"""A webhook receiver for the notifier's tests. It checks every request with the
Standard Webhooks reference library (`standardwebhooks` from PyPI, an implementation
independent of ours), answers with the next status of its script, and logs one JSON
line per request (a digest's with its id and the ids of its alerts).

usage: receiver.py SECRET STATUSES LOG PORT_FILE [DELAY_MS]
  STATUSES: e.g. 500,200 (the last repeats); 429/120 answers 429 with Retry-After: 120
  (a bare 429 says Retry-After: 1). DELAY_MS: wait that long before answering, so a
  delivery is in flight when a test kills the notifier.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks import Webhook

secret, statuses, log_path, port_path = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
delay = int(sys.argv[5]) / 1000 if len(sys.argv) > 5 else 0
webhook = Webhook(secret)
seen = 0


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            webhook.verify(body, headers)
            verified = True
        except Exception as e:  # the reason goes to the log, for the test to show
            verified = str(e)
        status, _, retry_after = statuses[min(seen, len(statuses) - 1)].partition("/")
        status = int(status)
        time.sleep(delay)
        seen += 1
        payload = json.loads(body)
        line = {"id": headers.get("webhook-id"), "verified": verified, "status": status,
                "alert_id": payload.get("alert_id")}
        if payload.get("type") == "digest":
            line["digest_id"] = payload["digest_id"]
            line["alerts"] = [a["alert_id"] for a in payload["alerts"]]
        with open(log_path, "a") as log:
            log.write(json.dumps(line) + "\n")
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", retry_after or "1")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Receiver)
with open(port_path, "w") as f:
    f.write(str(server.server_port))
server.serve_forever()
