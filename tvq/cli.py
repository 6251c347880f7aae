"""The ``tvq`` command.

Each subcommand lives next to the code it drives (``add_subcommands`` in that module);
this file only assembles them and turns every :class:`~tvq.errors.TvqError` into one line
on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import TvqError

# Modules that contribute subcommands, in the order ``tvq --help`` lists them.
_COMMAND_MODULES = ("tvq.data.cli", "tvq.train", "tvq.sample", "tvq.evaluate", "tvq.notebook",
                    "tvq.reproduce", "tvq.rescore", "tvq.ablations", "tvq.sweep")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tvq",
        description="TimeVQVDM, reproduced: train, sample and evaluate on the UCR archive.",
    )
    parser.add_argument("--version", action="version", version=f"tvq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet (or an optional part): skip it
                continue
            raise
        module.add_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except TvqError as exc:
        print(f"tvq: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tvq: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
