"""Real local receivers for alert channels: an HTTP server and an SMTP server.

Each binds a free loopback port, records what it receives, and is stopped by its
fixture. Nothing here imitates apprise: the real clients talk to real servers.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import ssl
import subprocess
import threading
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support import free_port


def refused_port() -> int:
    """A port nothing listens on: connections to it are refused at once."""
    return free_port()


@dataclasses.dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any  # decoded JSON


class HttpSink:
    """Records every POST; ``gate`` (when cleared) holds requests to simulate a slow channel."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Request] = []
        self.gate = threading.Event()
        self.gate.set()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sink.gate.wait(30)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                sink.requests.append(Request(self.path, dict(self.headers), json.loads(raw)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, scheme: str = "json", path: str = "/hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def refuse(self) -> None:
        """Stop listening, keeping the port number (connections are refused)."""
        self.close()


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on a free port; with ``tls_dir``: STARTTLS required and AUTH checked."""

    def __init__(self, tls_dir: Path | None = None, user: str = "", password: str = "") -> None:
        self.recorder = _Recorder()
        self.logins: list[str] = []
        options: dict[str, Any] = {}
        if tls_dir is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*_self_signed(tls_dir))
            options = {
                "tls_context": context,
                "require_starttls": True,
                "auth_require_tls": True,
                "authenticator": self._authenticate(user, password),
            }
        self.port = free_port()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    @property
    def messages(self) -> list[EmailMessage]:
        return self.recorder.messages

    def _authenticate(self, user: str, password: str) -> Any:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            ok = isinstance(data, LoginPassword) and (
                data.login.decode(),
                data.password.decode(),
            ) == (user, password)
            if ok:
                self.logins.append(user)
            return AuthResult(success=ok)

        return check

    def close(self) -> None:
        self.controller.stop()


def _self_signed(directory: Path) -> tuple[str, str]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return str(cert), str(key)


def dead_letter_event(job_id: int = 42, **changes: Any) -> Any:
    """A dead-letter event as the manager publishes it."""
    from services.manager.events import EventKind, ManagerEvent

    fields: dict[str, Any] = {
        "job_id": job_id,
        "payload": f"jobs/invoice-{job_id}.txt",
        "queue": "default",
        "error": "ValueError: invoice total is negative",
        "attempts": 3,
        "max_attempts": 3,
        "reason": "fail",
        "consumer_id": "host-123-abcd",
    }
    fields.update(changes)
    return ManagerEvent(EventKind.DEAD_LETTERED, **fields)
