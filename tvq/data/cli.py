"""``tvq data list`` and ``tvq data show NAME``."""
from __future__ import annotations

import argparse
import json

from . import all_datasets, availability, load_ucr


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="the UCR archive: list datasets, show one")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    pl = dsub.add_parser("list", help="one row per dataset of the thesis's Table 6, with where it can come from")
    pl.add_argument("--data-dir", default=None, help="local UCRArchive_2018 folder (default: $TVQ_UCR_DIR)")
    pl.add_argument("--available", choices=("offline", "cached", "download"), help="only rows with this availability")
    pl.add_argument("--json", action="store_true", help="one JSON object per line")
    pl.set_defaults(func=_list)

    ps = dsub.add_parser("show", help="load one dataset and print its summary")
    ps.add_argument("name")
    ps.add_argument("--data-dir", default=None, help="local UCRArchive_2018 folder (default: $TVQ_UCR_DIR)")
    ps.add_argument("--raw", action="store_true", help="skip the thesis scaling")
    ps.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    ps.add_argument("--json", action="store_true")
    ps.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    rows = []
    for info in all_datasets():
        avail = availability(info.name, args.data_dir)
        if args.available and avail != args.available:
            continue
        rows.append({"id": info.id, "name": info.name, "type": info.type, "train": info.n_train,
                     "test": info.n_test, "classes": info.n_classes, "length": info.length_label,
                     "availability": avail})
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    header = ("id", "name", "type", "train", "test", "classes", "length", "availability")
    widths = [max(len(str(h)), *(len(str(r[h])) for r in rows)) if rows else len(h) for h in header]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(r[h]).ljust(w) for h, w in zip(header, widths)))
    counts = {k: sum(r["availability"] == k for r in rows) for k in ("offline", "cached", "download")}
    print(f"{len(rows)} datasets: {counts['offline']} offline, {counts['cached']} cached, {counts['download']} to download")
    return 0


def _show(args: argparse.Namespace) -> int:
    ds = load_ucr(args.name, data_dir=args.data_dir, scaling="none" if args.raw else "thesis",
                  allow_download=not args.no_download)
    summary = ds.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>20}: {v}")
    return 0
