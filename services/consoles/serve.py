"""``python -m services.consoles.serve CONSOLE SCRIPT [streamlit options]``: what
``pq console`` runs. It starts the console's metrics endpoint (metrics.py) in this
process, then Streamlit itself, so the endpoint answers from the start (not only once
someone opened a page) and counts what the pages count."""

from __future__ import annotations

import sys

from services.consoles import metrics


def main(argv: list[str]) -> int:
    console, script, *options = argv
    metrics.serve_from_env(console)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", script, *options]
    cli.main(prog_name="streamlit")  # exits with Streamlit's own status, as `python -m`
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
