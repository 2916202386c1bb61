"""Entry point: the fast paths (``fast/``) first, then the full CLI (``app.py``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from envpools_cli.fast import answer

    code = answer(args)
    if code is None:
        from envpools_cli.app import run

        code = run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
