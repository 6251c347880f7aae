"""Metadata of the 128 UCR datasets (thesis Table 6), shipped with the package.

Every load is checked against it, so a truncated or wrong file is caught before it can
train a model.
"""
from __future__ import annotations

import csv
import dataclasses
import difflib
import functools
from importlib import resources

from ..errors import DatasetNotFound

# Variable-length datasets: the archive's TSV files are NaN-padded to this width (the
# longest series of the set). Table 6 only says "Vary"; these widths are the UCR 2018
# archive's, checked against the bundled files where the wheel ships them.
MAX_LENGTH = {
    "AllGestureWiimoteX": 500, "AllGestureWiimoteY": 500, "AllGestureWiimoteZ": 500,
    "GestureMidAirD1": 360, "GestureMidAirD2": 360, "GestureMidAirD3": 360,
    "GesturePebbleZ1": 455, "GesturePebbleZ2": 455,
    "PickupGestureWiimoteZ": 361, "PLAID": 1344, "ShakeGestureWiimoteZ": 385,
}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    id: int
    name: str
    type: str
    n_train: int
    n_test: int
    n_classes: int
    length: int | None       # None for variable-length sets
    max_length: int          # = length for fixed-length sets

    @property
    def variable_length(self) -> bool:
        return self.length is None

    @property
    def length_label(self) -> str:
        return "Vary" if self.length is None else str(self.length)


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, DatasetInfo]:
    text = resources.files("tvq.resources").joinpath("ucr_summary_table6.csv").read_text()
    out: dict[str, DatasetInfo] = {}
    for row in csv.DictReader(text.splitlines()):
        name = row["name"]
        length = None if row["length"] == "Vary" else int(row["length"])
        out[name] = DatasetInfo(
            id=int(row["id"]), name=name, type=row["type"], n_train=int(row["train"]),
            n_test=int(row["test"]), n_classes=int(row["classes"]), length=length,
            max_length=length if length is not None else MAX_LENGTH[name],
        )
    return out


def all_datasets() -> list[DatasetInfo]:
    """The 128 datasets in the thesis's order (Table 6 ids)."""
    return sorted(_table().values(), key=lambda d: d.id)


def get_info(name: str) -> DatasetInfo:
    """Metadata of one dataset; an unknown name suggests close matches (case-insensitive)."""
    table = _table()
    if name in table:
        return table[name]
    by_lower = {k.lower(): k for k in table}
    if name.lower() in by_lower:
        return table[by_lower[name.lower()]]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else "; `tvq data list` shows all 128"
    raise DatasetNotFound(f"unknown UCR dataset {name!r}{hint}")
