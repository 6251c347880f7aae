"""One writer per run folder.

``tvq train`` holds an exclusive ``flock`` on ``<run>/.lock`` for as long as it trains; the
file also records who holds it. A second process asking for the same folder is refused at
once, naming the holder. The kernel drops the lock when its process dies (``kill -9``
included), so a lock file left behind by a dead process is simply taken over, with a note.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from .errors import RunLocked

LOCK_NAME = ".lock"


def _holder(fh) -> dict:
    fh.seek(0)
    try:
        return json.loads(fh.read() or "{}")
    except ValueError:
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold the run folder's lock for the duration of the block; refuse if another process holds it."""
    path = Path(folder) / LOCK_NAME
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            h = _holder(fh)
            who = f"process {h.get('pid', '?')} on {h.get('host', '?')} (since {h.get('since', '?')})" if h else "another process"
            raise RunLocked(f"{folder} is in use: {who} is training into it; wait for it or use another --out") from None
        old = _holder(fh)
        if old.get("pid") and old.get("host") == socket.gethostname() and old["pid"] != os.getpid() and not _alive(old["pid"]):
            print(f"tvq: note: taking over the lock of process {old['pid']}, which has ended", file=sys.stderr)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        fh.flush()
        try:
            yield path
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()
