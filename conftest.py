"""Let nbval collect the book's jupytext MyST chapters (``pytest --nbval-lax book/``).

nbval only knows ``.ipynb`` files. The chapters are ``.md`` files with a jupytext header;
this hook reads each one with jupytext and hands the notebook to nbval's own collector, so
every code cell becomes one test item, executed in a kernel whose working directory is the
chapter's folder (as in the book build).

A plain ``pytest`` never gets here for the book: ``testpaths = tests`` and nbval is only
active with ``--nbval`` or ``--nbval-lax``.
"""
from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

_MYST_MARK = "format_name: myst"


def _is_myst_notebook(path: Path) -> bool:
    if path.suffix != ".md":
        return False
    try:
        head = path.read_text(encoding="utf-8")[:2000]
    except OSError:
        return False
    return head.startswith("---") and _MYST_MARK in head


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    opt = parent.config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return None
    if not _is_myst_notebook(file_path):
        return None
    return MystNotebookFile.from_parent(parent, path=file_path)


def _load_nbval_file_class():
    from nbval.plugin import IPyNbFile

    return IPyNbFile


class MystNotebookFile(_load_nbval_file_class()):
    """nbval's notebook collector, reading the notebook with jupytext instead of nbformat."""

    def collect(self):
        import jupytext
        import nbval.plugin

        notebook = jupytext.read(str(self.path))
        # nbval reads the file with nbformat.read inside collect(); hand it ours instead.
        with mock.patch.object(nbval.plugin.nbformat, "read", lambda *args, **kwargs: notebook):
            yield from super().collect()
