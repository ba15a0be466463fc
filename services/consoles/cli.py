"""``pq console admin|ops`` runs a console under Streamlit; ``pq console hash-password``
makes a password hash for the users file.

Registered in the root ``pyproject.toml`` under ``[project.entry-points."pq.commands"]``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from pqcore.config import DEFAULT_DB
from services.common.container import container_database_problem
from services.consoles import auth, metrics

APPS = {"admin": ("admin_app.py", 8501), "ops": ("ops_app.py", 8502)}
HERE = Path(__file__).resolve().parent


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("console", help="run the admin or ops console (Streamlit)")
    sub = parser.add_subparsers(title="consoles", metavar="CONSOLE")
    for name, (_, port) in APPS.items():
        p = sub.add_parser(name, help=f"the {name} console (default port {port})")
        p.add_argument("--port", type=int, default=port)
        p.add_argument(
            "--address",
            default="127.0.0.1",
            help="interface to listen on (default: localhost only)",
        )
        p.add_argument(
            "--db",
            dest="console_db",
            default=None,
            metavar="DB",
            help="queue database (default: pq --db, PQ_DB, var/queue.db)",
        )
        p.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help=f"Prometheus metrics port (default {metrics.PORT_ENV} or"
            f" {metrics.DEFAULT_PORTS[name]}; 0 disables)",
        )
        p.add_argument(
            "--metrics-address",
            default=None,
            help=f"interface for the metrics (default {metrics.ADDRESS_ENV} or 127.0.0.1)",
        )
        p.add_argument(
            "--dev", action="store_true", help="reload on source changes (development only)"
        )
        p.set_defaults(func=run_console, console=name)
    p = sub.add_parser("hash-password", help="print a password hash for PQ_CONSOLE_USERS")
    p.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    p.set_defaults(func=cmd_hash_password)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def streamlit_command(console: str, port: int, address: str, dev: bool = False) -> list[str]:
    script, _ = APPS[console]
    options = {
        "server.port": str(port),
        "server.address": address,
        "server.headless": "true",  # never try to open a browser on the server
        "browser.gatherUsageStats": "false",  # no telemetry leaves the machine
        "server.fileWatcherType": "auto" if dev else "none",  # no reloads in production
        "server.runOnSave": "false",
        "client.toolbarMode": "minimal",
        # Tracebacks go to the log, not to the browser (they can name paths and settings).
        "client.showErrorDetails": "full" if dev else "type",
        "global.developmentMode": "false",
    }
    # serve.py starts the console's metrics endpoint, then Streamlit in the same process.
    command = [sys.executable, "-m", "services.consoles.serve", console, str(HERE / script)]
    for name, value in options.items():
        command += [f"--{name}", value]
    return command


def run_console(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        print(f"pq console: invalid port {args.port}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    db = args.console_db or args.db
    if db:
        env["PQ_DB"] = db
    if args.metrics_port is not None:
        env[metrics.PORT_ENV] = str(args.metrics_port)
    env.setdefault(metrics.PORT_ENV, str(metrics.DEFAULT_PORTS[args.console]))
    if args.metrics_address:
        env[metrics.ADDRESS_ENV] = args.metrics_address
    raw_port = env[metrics.PORT_ENV].strip() or "0"
    if not raw_port.isdigit() or int(raw_port) > 65535:
        print(f"pq console: invalid metrics port {raw_port!r}", file=sys.stderr)
        return 2
    problem = container_database_problem(env.get("PQ_DB") or DEFAULT_DB, env)
    if problem is not None:
        print(f"pq console {args.console}: refused to start: {problem}", file=sys.stderr)
        return 2
    try:
        users = auth.load_users(env)
        auth.session_seconds(env)
    except auth.ConfigError as error:
        print(f"pq console: {error}", file=sys.stderr)
        return 2
    if not users:
        password = auth.new_one_time_password()
        env[auth.ONE_TIME_HASH_ENV] = auth.hash_password(password)
        print(
            f"pq console {args.console}: no users configured ({auth.USERS_ENV}); "
            f"log in as {auth.ONE_TIME_USER!r} with the one-time password: {password}",
            flush=True,
        )
    command = streamlit_command(args.console, args.port, args.address, args.dev)
    print(
        f"pq console {args.console}: http://{args.address}:{args.port}/ "
        f"(queue {env.get('PQ_DB', 'var/queue.db')})",
        flush=True,
    )
    sys.stderr.flush()
    # exec: the console's signals and exit status are Streamlit's own (supervisor-friendly).
    os.execve(sys.executable, command, env)
    return 0  # pragma: no cover


def cmd_hash_password(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("pq console: the passwords differ", file=sys.stderr)
            return 2
    try:
        print(auth.hash_password(password))
    except ValueError as error:
        print(f"pq console: {error}", file=sys.stderr)
        return 2
    return 0
