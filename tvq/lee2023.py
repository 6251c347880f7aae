"""The thesis's evaluators: the pretrained FCNs of Lee et al. (2023), one per UCR dataset.

Section 3.6 of the thesis scores FID, IS and TRTR with "the pre-trained classifiers
provided by (Lee et al., 2023)": 128 supervised FCNs published by the TimeVQVAE authors
(MIT licence; repository danelee2601/supervised-FCN, later as one zip on figshare). With
them our FID and IS are computed in the same feature space as the thesis's, so the two
can be compared number for number. (:mod:`tvq.fcn` trains an evaluator of our own with
the appendix-D recipe instead: ``evaluator: own``.)

Where a checkpoint ``<Dataset>.ckpt`` comes from, in order:

1. ``$TVQ_EVALUATOR_DIR`` when it is set (a folder holding the 128 files, e.g. an unpacked
   copy of the zip); a file missing there is an error, not a reason to download;
2. the cache, ``$TVQ_CACHE_DIR/evaluators/lee2023/`` (default ``~/.cache/tvq/...``);
3. a download of the published zip (once, with pooch; ``$TVQ_EVALUATOR_URL`` overrides the
   address), whose members are verified and moved into the cache one complete file at a
   time; the zip itself is deleted.

Every file is checked against the SHA-256 pinned in ``tvq/resources/lee2023_fcn_sha256.txt``
(taken from the repository commit that published them) before it is used, and read with
``torch.load(weights_only=True)``: no pickled object is ever executed. Its keys are those of
Lee et al.'s ``FCNBaseline``; :func:`to_tvq_state_dict` renames them onto :class:`tvq.fcn.FCN`,
which is the same network (same layers, same "same" padding: k - 1 zeros, the odd one on the
right). Inputs must be scaled as the thesis scales them (one mean and variance of the
training matrix), which is what :func:`tvq.data.load_ucr` does by default.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

import torch

from .errors import CheckpointError, DownloadError
from .io import quiet_downloads
from .fcn import FCN, file_sha256, read_state_dict

ZIP_URL = "https://figshare.com/ndownloader/files/38378411"
SOURCE = "Lee et al. (2023), danelee2601/supervised-FCN @ abc479c3 (MIT)"
_PINS = "lee2023_fcn_sha256.txt"


# --------------------------------------------------------------------------------------
# 1. What the files must be
# --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def pinned_sha256() -> dict[str, str]:
    """Dataset name → the SHA-256 its checkpoint must have."""
    text = resources.files("tvq.resources").joinpath(_PINS).read_text()
    pins = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([0-9a-f]{64})\s+\*?(\S+)\.ckpt", line.strip())
        if m:
            pins[m.group(2)] = m.group(1)
    return pins


def _pin_of(name: str) -> str:
    pins = pinned_sha256()
    if name not in pins:
        raise CheckpointError(f"there is no Lee et al. (2023) evaluator for {name!r} (they cover the 128 UCR "
                              f"datasets); use -p evaluator=own")
    return pins[name]


def _verify(path: Path, name: str, where: str) -> Path:
    if file_sha256(path) != _pin_of(name):
        raise CheckpointError(f"{path} does not match the SHA-256 pinned for {name} ({where}: truncated, "
                              f"tampered with or another file)")
    return path


# --------------------------------------------------------------------------------------
# 2. Where the files are
# --------------------------------------------------------------------------------------
def evaluator_dir() -> Path | None:
    d = os.environ.get("TVQ_EVALUATOR_DIR")
    return Path(d).expanduser() if d else None


def cache_folder() -> Path:
    from .data import cache_root

    return cache_root() / "evaluators" / "lee2023"


def checkpoint_path(name: str, allow_download: bool = True) -> Path:
    """The verified checkpoint of ``name``: from $TVQ_EVALUATOR_DIR, the cache, or a download."""
    _pin_of(name)
    folder = evaluator_dir()
    if folder is not None:
        path = folder / f"{name}.ckpt"
        if not path.is_file():
            raise CheckpointError(f"$TVQ_EVALUATOR_DIR is {folder}, which holds no {name}.ckpt")
        return _verify(path, name, "$TVQ_EVALUATOR_DIR")
    cached = cache_folder() / f"{name}.ckpt"
    if cached.is_file():
        return _verify(cached, name, "cache; delete it to download again")
    if not allow_download:
        raise CheckpointError(f"the Lee et al. evaluator of {name} is not on this machine and downloads are off; "
                              f"set $TVQ_EVALUATOR_DIR to a folder of the 128 .ckpt files")
    download_all()
    if not cached.is_file():
        raise DownloadError(f"the evaluator zip from {_url()} holds no {name}.ckpt")
    return cached


def _url() -> str:
    return os.environ.get("TVQ_EVALUATOR_URL", ZIP_URL)


def download_all() -> list[Path]:
    """Fetch the published zip once; move every member that verifies into the cache.

    A member whose bytes differ from its pin fails the whole download before anything is
    moved, and the zip and its temporary folder are always removed: the cache only ever
    holds complete, verified files.
    """
    import pooch  # only this path needs it

    url = _url()
    target = cache_folder()
    target.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".download-", dir=target))
    try:
        try:
            with quiet_downloads():
                zpath = Path(pooch.retrieve(url, known_hash=None, fname="lee2023-fcn.zip", path=tmpdir,
                                            progressbar=False))
        except Exception as exc:  # network errors come in many classes (requests, urllib3, OSError)
            raise DownloadError(f"could not download the Lee et al. evaluators from {url} "
                                f"({exc.__class__.__name__}); offline? set $TVQ_EVALUATOR_DIR to a folder "
                                f"of the 128 .ckpt files") from None
        pins = pinned_sha256()
        staged: list[tuple[Path, Path]] = []
        try:
            with zipfile.ZipFile(zpath) as zf:
                for member in zf.infolist():
                    base = Path(member.filename).name
                    if member.is_dir() or not base.endswith(".ckpt") or base[:-5] not in pins:
                        continue
                    out = tmpdir / base
                    with zf.open(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    if file_sha256(out) != pins[base[:-5]]:
                        raise DownloadError(f"{base} in the evaluator zip from {url} does not match its pinned "
                                            f"SHA-256; nothing was kept")
                    staged.append((out, target / base))
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise DownloadError(f"the evaluator zip from {url} is truncated or corrupted "
                                f"({exc.__class__.__name__}); nothing was kept") from None
        if not staged:
            raise DownloadError(f"the evaluator zip from {url} holds none of the expected .ckpt files")
        for src, dst in staged:  # each file is complete and verified; os.replace is atomic
            os.replace(src, dst)
        return [dst for _, dst in staged]
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# 3. From Lee et al.'s keys to tvq's FCN
# --------------------------------------------------------------------------------------
# FCNBaseline: layers.<i>.layers.0 = conv, layers.<i>.layers.1 = batch norm, final = linear.
# tvq's FCN.blocks is [pad, conv, bn, relu] x 3, so block i's conv is blocks.<4i+1>, its
# batch norm blocks.<4i+2>; the linear layer is ``head``.
_KEY = re.compile(r"layers\.([0-2])\.layers\.([01])\.(\w+)")


def to_tvq_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an ``FCNBaseline`` state dict onto :class:`tvq.fcn.FCN`'s keys."""
    out = {}
    for key, value in state.items():
        m = _KEY.fullmatch(key)
        if m:
            block, part, leaf = int(m.group(1)), int(m.group(2)), m.group(3)
            out[f"blocks.{4 * block + 1 + part}.{leaf}"] = value
        elif key.startswith("final."):
            out["head." + key[len("final."):]] = value
        else:
            raise CheckpointError(f"unexpected key {key!r}: not an FCNBaseline state dict")
    return out


def load_evaluator(name: str, n_classes: int, device: torch.device | str = "cpu",
                   allow_download: bool = True) -> FCN:
    """Lee et al.'s FCN of dataset ``name`` as a :class:`tvq.fcn.FCN` in eval mode."""
    path = checkpoint_path(name, allow_download=allow_download)
    return _load(str(path), name, int(n_classes)).to(device).eval()


@functools.lru_cache(maxsize=8)
def _load(path: str, name: str, n_classes: int) -> FCN:
    # Cached per file: scoring one dataset loads its evaluator for every sample set.
    mapped = to_tvq_state_dict(read_state_dict(Path(path)))
    head = mapped.get("head.weight")
    if head is None or head.dim() != 2:
        raise CheckpointError(f"{path}: no classifier weight ('final.weight')")
    if head.shape[0] != n_classes:
        raise CheckpointError(f"{path}: the evaluator has {head.shape[0]} classes, {name} has {n_classes}")
    model = FCN(n_classes)
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: state dict does not fit the FCN ({str(exc).splitlines()[0]})") from None
    return model.eval()


# --------------------------------------------------------------------------------------
# 4. The check that these are the thesis's evaluators: TRTR against Table 5
# --------------------------------------------------------------------------------------
def trtr_against_thesis(names: list[str], device: torch.device | str = "cpu", allow_download: bool = True,
                        progress=None) -> list[dict]:
    """For each dataset: the evaluator's accuracy on the real test split next to Table 5's TRTR.

    Returns one row per dataset: ``dataset``, ``n_test``, ``trtr_pct`` (ours, from these
    weights), ``thesis_trtr_pct`` and ``match`` (equal at the table's printed precision,
    0.01 %); the thesis's Table 5 prints TRTR rounded to two decimals.
    """
    from .data import load_ucr
    from .fcn import accuracy
    from .results import thesis_table

    table5 = thesis_table(5).set_index("dataset")["trtr_pct"]
    rows = []
    for name in names:
        ds = load_ucr(name, allow_download=allow_download)
        model = load_evaluator(ds.name, ds.n_classes, device=device, allow_download=allow_download)
        ours = 100.0 * accuracy(model, ds.x_test, ds.y_test)
        thesis = float(table5[ds.name]) if ds.name in table5.index else float("nan")
        rows.append({"dataset": ds.name, "n_test": int(len(ds.x_test)), "trtr_pct": ours,
                     "thesis_trtr_pct": thesis, "match": bool(abs(round(ours, 2) - thesis) < 0.005 + 1e-9)})
        if progress is not None:
            progress(rows[-1])
    return rows
