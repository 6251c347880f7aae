"""Run a book chapter as a parameterised notebook: the ``tvq chapter`` command.

The chapters in ``book/`` are jupytext MyST notebooks. Each has a cell tagged
``parameters`` that holds plain literals (``dataset``, ``profile``, ``device``, ``seed``)
and, right after it, a setup cell that turns whatever papermill injected into one typed
:class:`~tvq.config.Config`::

    cfg = chapter_config(globals())

so a chapter reads the same ``params/<profile>.yaml`` files as the command line and the
tests, and a wrong key or value fails with a :class:`~tvq.errors.ConfigError` before any
work is done.

``tvq chapter book/diffusion.md -f params/smoke.yaml -p dataset=Coffee`` validates the
parameters here first, converts the chapter with jupytext, executes it with papermill
(working directory ``book/``, so relative paths behave as in the book build) and writes the
executed notebook under ``runs/chapters/``.
"""
from __future__ import annotations

import argparse
import ast
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import yaml

from .config import Config, load_config, parse_overrides, resolve_params_file
from .errors import ConfigError, TvqError

__all__ = ["chapter_config", "read_chapter", "run_chapter", "default_output", "add_subcommands",
           "ChapterError", "RUNS_DIR", "THESIS_EQUATIONS", "checks_in_tests", "checks_in_book", "equation_labels",
           "INDEX_RULES", "equation_index_problems"]

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = REPO_ROOT / "runs" / "chapters"

# Names the setup cell reads besides the Config fields: where the parameters came from.
_PARAMS_FILE_KEY = "params_file"


class ChapterError(TvqError):
    """A chapter that cannot be run: missing, not a jupytext MyST notebook, or a failing cell."""


# ----------------------------------------------------------------------------------------
# Inside a chapter
# ----------------------------------------------------------------------------------------

def chapter_config(namespace: Mapping[str, Any]) -> Config:
    """Typed configuration of a chapter from its (papermill-injected) global variables.

    Every name in ``namespace`` that is a :class:`Config` field is an override; the base is
    the params file named by ``params_file`` (set by ``tvq chapter``) or else by
    ``profile``. Papermill's ``-f params/P.yaml`` injects every key of that file, so both
    routes give the same configuration.
    """
    fields = set(Config.__dataclass_fields__)
    values = {k: namespace[k] for k in fields if k in namespace}
    params = namespace.get(_PARAMS_FILE_KEY) or values.get("profile") or None
    cfg = load_config(params, values)
    if cfg.profile == "custom" and params:
        cfg = cfg.replace(profile=Path(str(params)).stem)
    return cfg


# ----------------------------------------------------------------------------------------
# Outside: reading and running chapters
# ----------------------------------------------------------------------------------------

def read_chapter(path: str | os.PathLike):
    """Read a jupytext MyST chapter (or an .ipynb) into a notebook node."""
    import jupytext

    path = Path(path)
    if not path.exists():
        raise ChapterError(f"chapter not found: {path}")
    if path.suffix not in (".md", ".ipynb"):
        raise ChapterError(f"{path}: a chapter is a jupytext .md (MyST) or an .ipynb file")
    if path.suffix == ".md" and "format_name: myst" not in path.read_text(encoding="utf-8")[:2000]:
        raise ChapterError(f"{path}: not a jupytext MyST notebook (its header lacks 'format_name: myst')")
    nb = jupytext.read(path)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise ChapterError(f"{path}: no cell is tagged 'parameters', so it cannot take -p/-f values")
    return nb


def _params_mapping(params_file: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(params_file.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{params_file}: expected a mapping of parameters")
    return loaded


def chapter_parameters(params: str | os.PathLike | None, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated values to inject into a chapter's parameters cell.

    Only the keys the user set (the params file's and the overrides) are injected, with
    the types :class:`Config` gives them, plus ``params_file`` so the chapter loads the
    same file. Raises :class:`ConfigError` on any bad key or value.
    """
    overrides = dict(overrides or {})
    mapping: dict[str, Any] = {}
    params_file = None
    if params is not None:
        params_file = resolve_params_file(params).resolve()
        mapping.update(_params_mapping(params_file))
    cfg = load_config(params_file, overrides)
    chosen = {k: getattr(cfg, k) for k in (*mapping, *overrides)}
    if params_file is not None:
        chosen[_PARAMS_FILE_KEY] = str(params_file)
    return chosen


def default_output(chapter: str | os.PathLike, parameters: Mapping[str, Any]) -> Path:
    """``runs/chapters/<chapter>_<dataset>_<profile>.ipynb``."""
    stem = Path(chapter).stem
    dataset = parameters.get("dataset", "default")
    profile = parameters.get("profile") or Path(str(parameters.get(_PARAMS_FILE_KEY, "default"))).stem
    return RUNS_DIR / f"{stem}_{dataset}_{profile}.ipynb"


def run_chapter(chapter: str | os.PathLike, params: str | os.PathLike | None = None,
                overrides: Mapping[str, Any] | None = None, out: str | os.PathLike | None = None, *,
                kernel_name: str | None = None, log_output: bool = False,
                timeout: int | None = None) -> Path:
    """Execute one chapter with papermill; return the path of the executed notebook.

    ``params`` is a profile name (``smoke``) or a params file; ``overrides`` are extra
    ``key: value`` settings (``{"dataset": "Coffee"}``). The chapter runs with its own folder
    as working directory. A failing cell raises :class:`ChapterError` naming the output
    notebook, which papermill keeps (with the traceback in it) for inspection.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    chapter = Path(chapter)
    nb = read_chapter(chapter)
    parameters = chapter_parameters(params, overrides)
    out_path = Path(out) if out is not None else default_output(chapter, parameters)
    if out_path.suffix != ".ipynb":
        raise ChapterError(f"output {out_path} must end in .ipynb")
    out_path.parent.mkdir(parents=True, exist_ok=True)  # papermill does not create it
    kernel = kernel_name or nb.metadata.get("kernelspec", {}).get("name", "python3")
    # papermill warns about every injected key the parameters cell does not name; those
    # keys are meant for chapter_config, so the warnings are noise.
    logging.getLogger("papermill").setLevel(logging.INFO if log_output else logging.ERROR)
    try:
        papermill.execute_notebook(
            nb, str(out_path), parameters=parameters, kernel_name=kernel,
            cwd=str(chapter.resolve().parent), progress_bar=False, log_output=log_output,
            execution_timeout=timeout,
        )
    except PapermillExecutionError as exc:
        raise ChapterError(f"{chapter}: cell {exc.exec_count} failed with {exc.ename}: {exc.evalue} "
                           f"(executed notebook kept at {out_path})") from None
    return out_path


# ----------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------

def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "chapter", help="run a book chapter with papermill (parameters from a params file and -p)",
        description="Execute a jupytext chapter of the book with papermill. The executed notebook "
                    "is written under runs/chapters/ unless --out says otherwise.")
    p.add_argument("path", help="the chapter, e.g. book/diffusion.md")
    p.add_argument("-f", "--params", dest="params", default=None,
                   help="params file or profile name (params/smoke.yaml, thesis, ...)")
    p.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter (repeatable), e.g. -p dataset=Coffee -p seed=1")
    p.add_argument("--out", default=None, help="where to write the executed notebook (.ipynb)")
    p.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell (default: none)")
    p.add_argument("--log-output", action="store_true", help="echo cell output while it runs")
    p.set_defaults(func=_cli_chapter)


def _cli_chapter(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.overrides)
    start = time.perf_counter()
    out = run_chapter(args.path, args.params, overrides, args.out, log_output=args.log_output,
                      timeout=args.timeout)
    print(f"{args.path} → {out} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    print(out)
    return 0


# ----------------------------------------------------------------------------------------
# Equation index: which equations are implemented, and which checks cover them
# ----------------------------------------------------------------------------------------

# The thesis numbers its equations (1) to (74).
THESIS_EQUATIONS = tuple(str(i) for i in range(1, 75))

_VERIFY_CALL = re.compile(r"""\bverify\(\s*["']([0-9]+[a-z]?)["']""")
_EQ_LABEL = re.compile(r"^\((eq-[0-9]+[a-z]?)\)=\s*$", re.M)


def _marker_equations(decorator: ast.expr) -> list[str]:
    """Equation numbers of a ``pytest.mark.equation("N", ...)`` decorator, else []."""
    if not isinstance(decorator, ast.Call):
        return []
    func = decorator.func
    if isinstance(func, ast.Attribute) and func.attr == "equation":
        return [a.value for a in decorator.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return []


def checks_in_tests(tests_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Equation → tests marked ``@pytest.mark.equation(...)`` (``file.py::test_name``)."""
    tests_dir = Path(tests_dir) if tests_dir is not None else REPO_ROOT / "tests"
    out: dict[str, list[str]] = {}
    for path in sorted(tests_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for dec in node.decorator_list:
                    for eq in _marker_equations(dec):
                        out.setdefault(eq, []).append(f"{path.name}::{node.name}")
    return out


def checks_in_book(book_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Equation → chapters (file stems) whose cells call ``verify("N", ...)``."""
    book_dir = Path(book_dir) if book_dir is not None else REPO_ROOT / "book"
    out: dict[str, list[str]] = {}
    for path in sorted(book_dir.glob("*.md")):
        for eq in _VERIFY_CALL.findall(path.read_text(encoding="utf-8")):
            chapters = out.setdefault(eq, [])
            if path.stem not in chapters:
                chapters.append(path.stem)
    return out


def equation_labels(book_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Equation → chapter stem where the book displays it under the label ``eq-N``."""
    book_dir = Path(book_dir) if book_dir is not None else REPO_ROOT / "book"
    out: dict[str, str] = {}
    for path in sorted(book_dir.glob("*.md")):
        for label in _EQ_LABEL.findall(path.read_text(encoding="utf-8")):
            out.setdefault(label[3:], path.stem)
    return out


# What each rule of the equation index forbids, keyed as equation_index_problems reports it.
INDEX_RULES: dict[str, str] = {
    "unknown": "named by a tag, a check, CHECKED_ONLY or NOT_COMPUTABLE, but not a numbered "
               "equation of the thesis (1-74)",
    "overlap": "in more than one of: implemented, CHECKED_ONLY, NOT_COMPUTABLE",
    "unexplained": "in none of: implemented, CHECKED_ONLY, NOT_COMPUTABLE",
    "unchecked": "implemented, but checked by no test marker and no verify() in the book",
    "checked_only_without_book_check": "in CHECKED_ONLY, but no book cell calls verify() for it",
    "orphan": "checked by a test marker or a verify() call, but neither implemented nor in CHECKED_ONLY",
}


def equation_index_problems(implemented=None, checked_only=None, not_computable=None,
                            in_tests=None, in_book=None,
                            equations: tuple[str, ...] = THESIS_EQUATIONS) -> dict[str, list[str]]:
    """Rule of :data:`INDEX_RULES` → the equations that break it (empty lists when all hold).

    Every argument left as ``None`` is read from the repository: ``implemented`` from
    :func:`tvq.equations.registry`, ``checked_only`` and ``not_computable`` from
    :mod:`tvq.equations`, ``in_tests`` from :func:`checks_in_tests` and ``in_book`` from
    :func:`checks_in_book`. Only the keys of the mappings matter, so tests can pass small
    made-up ones.
    """
    from . import equations as eqs

    implemented = eqs.registry() if implemented is None else implemented
    checked_only = eqs.CHECKED_ONLY if checked_only is None else checked_only
    not_computable = eqs.NOT_COMPUTABLE if not_computable is None else not_computable
    in_tests = checks_in_tests() if in_tests is None else in_tests
    in_book = checks_in_book() if in_book is None else in_book

    groups = {"implemented": set(implemented), "CHECKED_ONLY": set(checked_only),
              "NOT_COMPUTABLE": set(not_computable)}
    checked = set(in_tests) | set(in_book)
    named = set().union(*groups.values(), checked)
    known = set(equations)

    def in_groups(eq: str) -> int:
        return sum(eq in members for members in groups.values())

    problems = {
        "unknown": named - known,
        "overlap": {eq for eq in named if in_groups(eq) > 1},
        "unexplained": {eq for eq in known if in_groups(eq) == 0},
        "unchecked": groups["implemented"] - checked,
        "checked_only_without_book_check": groups["CHECKED_ONLY"] - set(in_book),
        "orphan": checked - groups["implemented"] - groups["CHECKED_ONLY"],
    }
    return {rule: sorted(problems[rule], key=_equation_order) for rule in INDEX_RULES}


def _equation_order(eq: str) -> tuple[int, str]:
    digits = "".join(ch for ch in eq if ch.isdigit())
    return (int(digits) if digits else 10**6, eq)
