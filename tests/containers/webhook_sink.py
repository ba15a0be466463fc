"""A webhook receiver for the container tier, run as a container of the test's compose
project (compose.test.yaml, profile ``alerts``) from the local base image: standard
library only. Every POST body is printed as one JSON line on stdout, so the test reads
what arrived with ``docker logs``; nothing is answered but 200.

    python3 webhook_sink.py PORT
"""

from __future__ import annotations

import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body
        print(json.dumps({"path": self.path, "body": parsed}), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # only received bodies on stdout


if __name__ == "__main__":
    # PID 1 ignores SIGTERM without a handler: `compose down` would wait its whole timeout.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler)
    print(json.dumps({"listening": server.server_address[1]}), flush=True)
    server.serve_forever()
