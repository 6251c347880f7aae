"""Output files: checked before any work starts, then written atomically.

A reader sees the old file or the whole new one, never half of one. The temporary file lies
next to the target (same file system, so the final rename is atomic), gets the mode a plain
``open()`` would give under the current umask (``mkstemp`` alone would make it 0600), and is
removed on any failure, Ctrl-C or SIGTERM (the CLI turns SIGTERM into an exception so that
clean-up runs). A target that exists but is not a regular file (``/dev/null``, a FIFO, a
directory) is refused: replacing it would turn a device into a file.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import OutputError, UnreadableFile


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _refuse_non_file(path: str | os.PathLike, what: str = "output") -> Path:
    """The target itself: a name, and if it exists, a regular file (never a directory or a device)."""
    path = Path(path)
    if str(path) in ("", "."):
        raise OutputError(f"{what}: no file name given")
    if path.exists() or path.is_symlink():
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise OutputError(f"{what} {path}: cannot be inspected ({exc.strerror or exc.__class__.__name__})") from None
        if stat.S_ISDIR(mode):
            raise OutputError(f"{what} {path} is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise OutputError(f"{what} {path} exists and is not a regular file; refusing to replace it")
    return path


def check_output(path: str | os.PathLike, what: str = "output", create_parent: bool = False) -> Path:
    """Refuse an output path that cannot be written, before the work that produces it starts.

    The parent must be an existing, writable directory (``create_parent``: it may be missing
    and is created later, but no file may stand where a folder is needed); the target must not
    be a directory or a special file. Returns the path.
    """
    path = _refuse_non_file(path, what)
    parent = path.parent
    probe = parent
    while not probe.exists():
        if not create_parent:
            raise OutputError(f"{what} {path}: folder {parent} does not exist")
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{what} {path}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: folder {probe} is not writable")
    if probe == parent:  # the real test (a pseudo file system such as /proc passes os.access)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe.tmp", dir=parent)
        except OSError as exc:
            raise OutputError(f"{what} {path}: cannot create a file in {parent} "
                              f"({exc.strerror or exc.__class__.__name__})") from None
        os.close(fd)
        os.unlink(tmp)
    return path


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Refuse a run folder that is a file, or that cannot be created or written."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{what} {path} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"{what} {path} is not writable")
        return path
    check_output(path, what, create_parent=True)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    with atomic_paths([path], suffix=suffix) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(paths: list[str | os.PathLike], suffix: str = "") -> Iterator[list[Path]]:
    """Like :func:`atomic_path` for several files that belong together (samples and their
    labels): all are written to temporary files first and renamed only when every one is
    complete, so a failure leaves none of the new files behind."""
    # The target is checked, not its folder: creating the temporary file below is the real test
    # of the folder (check_output, which commands call before their work, probes it the same way).
    targets = [_refuse_non_file(p) for p in paths]
    for t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
    tmps: list[Path] = []
    try:
        for t in targets:
            fd, tmp = tempfile.mkstemp(prefix=f".{t.name}.", suffix=suffix + ".tmp", dir=t.parent)
            os.fchmod(fd, 0o666 & ~_umask())
            os.close(fd)
            tmps.append(Path(tmp))
        yield tmps
        for t in targets:   # checked again: something may have appeared there meanwhile
            _refuse_non_file(t)
        for tmp, t in zip(tmps, targets):
            try:
                os.replace(tmp, t)
            except OSError as exc:
                raise OutputError(f"could not write {t} ({exc.strerror or exc.__class__.__name__})") from None
    except OSError as exc:  # no space left, a quota, a read-only remount: one line, no partial file
        raise OutputError(f"could not write {targets[0]} ({exc.strerror or exc.__class__.__name__})") from None
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """Silence pooch's own "Downloading data from ..." lines: tvq reports success or failure itself,
    in one line, and a failed download should not print two messages."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    save_npys([path], [array])


def save_npys(paths: list[str | os.PathLike], arrays: list[np.ndarray]) -> None:
    """Write several arrays as a unit: all of them or none (see :func:`atomic_paths`)."""
    with atomic_paths(paths, suffix=".npy") as tmps:
        for tmp, array in zip(tmps, arrays):
            with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to a path
                np.save(fh, array)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Read an array tvq wrote; never unpickles (an object array is refused, not run)."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UnreadableFile(f"{path} is not a readable array file ({exc.__class__.__name__}); "
                             "delete it to have it written again") from None


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every member of an ``.npz`` tvq wrote, eagerly, without unpickling."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, KeyError) as exc:
        raise UnreadableFile(f"{path} is not a readable array archive ({exc.__class__.__name__}); "
                             "delete it to have it written again") from None
