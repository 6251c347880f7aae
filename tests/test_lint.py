"""The code passes the linter set up in pyproject.toml (pyflakes and bugbear, via ruff)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff is not installed: `pip install -r requirements.txt` installs the pinned version")
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
                           str(ROOT / "pyproject.toml"), *args], capture_output=True, text=True, cwd=ROOT)


def test_the_linter_finds_nothing_in_the_code():
    res = _ruff(".")
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_linter_configuration_catches_an_unused_import_and_a_loop_closure(tmp_path):
    # Guards the check above against a configuration that selects no rule at all.
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\nfns = []\nfor i in range(3):\n    fns.append(lambda: i)\n")
    res = _ruff(str(bad))
    assert res.returncode == 1
    assert "F401" in res.stdout and "B023" in res.stdout
