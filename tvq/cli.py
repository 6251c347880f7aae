"""The ``tvq`` command.

Each subcommand lives next to the code it drives (``add_subcommands`` in that module);
this file only assembles them and turns every :class:`~tvq.errors.TvqError` into one line
on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from . import __version__
from .device import tune_host_allocator
from .errors import TvqError

# Modules that contribute subcommands, in the order ``tvq --help`` lists them.
_COMMAND_MODULES = ("tvq.data.cli", "tvq.train", "tvq.sample", "tvq.evaluate", "tvq.notebook",
                    "tvq.reproduce", "tvq.rescore", "tvq.ablations", "tvq.sweep")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (and exit 2), pointing at ``--help`` for the full usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tvq",
        description="TimeVQVDM, reproduced: train, sample and evaluate on the UCR archive.",
    )
    parser.add_argument("--version", action="version", version=f"tvq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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
    previous = _terminate_as_exception()
    try:
        tune_host_allocator()   # speed only (a CPU step's large blocks reused, not mapped anew)
        return int(args.func(args) or 0)
    except TvqError as exc:
        print(f"tvq: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`tvq results | head`): nothing to say to it
        # Point stdout at devnull so that the interpreter's final flush does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141   # 128 + SIGPIPE, what a shell reports for a program the pipe ended
    except OSError as exc:  # the environment, not tvq: a full disk, a permission, a vanished file
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"tvq: error: {exc.strerror or exc.__class__.__name__}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tvq: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("tvq: terminated", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """SIGTERM as an exception, so that ``finally`` blocks (temporary files, locks) run."""


def _terminate_as_exception():
    def handler(signum, frame):
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. a test runner's worker): leave signals alone
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
