"""A provider's HTTP API for the notifier's tests (a Slack-compatible incoming
webhook, a Twilio-shaped SMS API): logs one JSON line per request (method, path,
authorization, content type, and the body parsed as JSON or as a form) and answers
with the next status of its script.

usage: provider.py STATUSES LOG PORT_FILE
  STATUSES: e.g. 429,200 (the last repeats); a 429 says Retry-After: 1.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

statuses, log_path, port_path = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
seen = 0


class Provider(BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        content_type = self.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            parsed = json.loads(body)
        else:
            parsed = {k: v[0] for k, v in parse_qs(body).items()}
        status = int(statuses[min(seen, len(statuses) - 1)])
        seen += 1
        line = {"path": self.path, "authorization": self.headers.get("authorization"),
                "content_type": content_type, "body": parsed, "status": status}
        with open(log_path, "a") as log:
            log.write(json.dumps(line) + "\n")
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Provider)
with open(port_path, "w") as f:
    f.write(str(server.server_port))
server.serve_forever()
