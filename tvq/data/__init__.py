"""The UCR archive: metadata, sources, checks and the thesis's scaling.

>>> ds = load_ucr("ECG200")            # doctest: +SKIP
>>> ds.x_train.shape, ds.n_classes     # doctest: +SKIP
((100, 96), 2)

Thesis scaling (its code, after Franceschi et al.): one mean and one variance over the
whole training matrix, ignoring NaN; train and test are both standardised with them;
then NaN (the padding of variable-length sets, or missing values) becomes 0.
Labels are encoded to ``0..C-1`` by sorting the training set's distinct labels.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..errors import MetadataMismatch
from .metadata import DatasetInfo, all_datasets, get_info
from .sources import availability, cache_root, data_cache, fetch_raw, wheel_names

__all__ = [
    "UCRDataset", "DatasetInfo", "load_ucr", "all_datasets", "get_info", "availability",
    "wheel_names", "cache_root", "data_cache", "thesis_scaling",
]


@dataclasses.dataclass
class UCRDataset:
    name: str
    x_train: np.ndarray   # float32 (N_train, L)
    y_train: np.ndarray   # int64 (N_train,) in 0..C-1
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    length: int           # columns of x (the padded width for variable-length sets)
    source: str
    classes: np.ndarray   # original label of each class index
    mean: float           # scaling statistics (0 and 1 when raw)
    std: float
    info: DatasetInfo

    def summary(self) -> dict:
        counts = np.bincount(self.y_train, minlength=self.n_classes)
        return {
            "name": self.name, "type": self.info.type, "source": self.source,
            "n_train": int(len(self.x_train)), "n_test": int(len(self.x_test)),
            "n_classes": self.n_classes, "length": self.length,
            "variable_length": self.info.variable_length,
            "train_class_counts": counts.tolist(),
            "scaling_mean": self.mean, "scaling_std": self.std,
            "train_mean": float(self.x_train.mean()), "train_std": float(self.x_train.std()),
        }


def _validator(info: DatasetInfo):
    def validate(raw, where: str) -> None:
        x_tr, y_tr, x_te, y_te = raw
        problems = []
        if len(x_tr) != info.n_train:
            problems.append(f"{len(x_tr)} training series, metadata says {info.n_train}")
        if len(x_te) != info.n_test:
            problems.append(f"{len(x_te)} test series, metadata says {info.n_test}")
        widths = {x_tr.shape[1], x_te.shape[1]}
        if info.length is not None and widths != {info.length}:
            problems.append(f"length {'/'.join(map(str, sorted(widths)))}, metadata says {info.length}")
        if info.length is None and max(widths) > info.max_length:
            problems.append(f"length {max(widths)} exceeds the maximum {info.max_length}")
        n_classes = len(set(y_tr.tolist()) | set(y_te.tolist()))
        if n_classes != info.n_classes:
            problems.append(f"{n_classes} classes, metadata says {info.n_classes}")
        unseen = set(y_te.tolist()) - set(y_tr.tolist())
        if unseen:
            problems.append(f"test labels {sorted(unseen)[:5]} never occur in training")
        if problems:
            raise MetadataMismatch(f"{info.name} from {where}: " + "; ".join(problems))
    return validate


def thesis_scaling(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Standardise with one nan-aware mean/std of the training matrix; then NaN → 0."""
    mean = float(np.nanmean(x_train))
    std = float(np.sqrt(np.nanvar(x_train)))
    if not np.isfinite(std) or std == 0.0:
        std = 1.0  # a constant training set: centre only
    out = [np.nan_to_num((x - mean) / std, nan=0.0) for x in (x_train, x_test)]
    return out[0], out[1], mean, std


def load_ucr(name: str, *, data_dir: str | os.PathLike | None = None, scaling: str = "thesis",
             allow_download: bool = True) -> UCRDataset:
    """Load one UCR dataset, checked against the archive metadata.

    ``scaling="thesis"`` (default) applies the thesis's global standardisation;
    ``scaling="none"`` returns the raw values (NaN padding kept).
    """
    info = get_info(name)
    raw, source = fetch_raw(info.name, data_dir, _validator(info), allow_download=allow_download)
    x_tr, lab_tr, x_te, lab_te = raw
    classes = _sorted_labels(lab_tr)
    index = {c: i for i, c in enumerate(classes.tolist())}
    y_tr = np.asarray([index[v] for v in lab_tr.tolist()], dtype=np.int64)
    y_te = np.asarray([index[v] for v in lab_te.tolist()], dtype=np.int64)
    width = max(x_tr.shape[1], x_te.shape[1])
    x_tr, x_te = _pad(x_tr, width), _pad(x_te, width)
    if scaling == "thesis":
        x_tr, x_te, mean, std = thesis_scaling(x_tr, x_te)
    elif scaling == "none":
        mean, std = 0.0, 1.0
    else:
        raise ValueError(f"scaling must be 'thesis' or 'none', got {scaling!r}")
    return UCRDataset(
        name=info.name, x_train=x_tr.astype(np.float32), y_train=y_tr,
        x_test=x_te.astype(np.float32), y_test=y_te, n_classes=len(classes), length=width,
        source=source, classes=classes, mean=mean, std=std, info=info,
    )


def _sorted_labels(labels: np.ndarray) -> np.ndarray:
    uniq = sorted(set(labels.tolist()), key=lambda v: (_num(v) is None, _num(v) or 0.0, v))
    return np.asarray(uniq)


def _num(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _pad(x: np.ndarray, width: int) -> np.ndarray:
    if x.shape[1] == width:
        return x
    out = np.full((x.shape[0], width), np.nan)
    out[:, : x.shape[1]] = x
    return out
