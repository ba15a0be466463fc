"""``python -m services.consoles admin|ops|hash-password`` — the same as ``pq console``."""

from __future__ import annotations

import argparse
import sys

from services.consoles.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.consoles")
    parser.set_defaults(db=None)
    register(parser.add_subparsers())
    args = parser.parse_args(["console", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
