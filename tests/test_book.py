"""The book: ``tvq chapter`` (papermill), nbval over every chapter, the strict build, its HTML.

These run the real tools in subprocesses, as CI does, under the ``smoke`` profile so the
whole file stays within a few minutes on two CPU cores:

* ``tvq chapter`` on a chapter, on two datasets, and its refusals of bad input;
* ``pytest --nbval-lax book/``: every cell of every chapter executes;
* ``jupyter-book build . -W -n --keep-going --all`` into a temporary folder, then checks on
  the HTML: every figure is an image, Figures 1-27 and Tables 1-6 are there, math
  is served from the book itself (no CDN), and no cell printed a traceback.
"""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tvq import cli
from tvq.errors import ConfigError
from tvq.notebook import ChapterError, chapter_config, chapter_parameters, default_output, read_chapter, run_chapter

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
PY = sys.executable
BIN = Path(PY).parent

# Thesis figures and tables the book must show, by the label of their directive.
FIGURES = [f"fig-{i}" for i in (*range(1, 13), 25, 26, 27)]
# Figures the results chapters draw as pairs, from stored runs ("Figures 13–14, ours").
PAIRED_FIGURES = ["fig-13-14", "fig-15-16"]
TABLES = ["table-1", "table-2", "table-3", "table-4", "table-5", "table-6"]
# Figures 17-24 (run charts per group of 16 datasets) are drawn per group that has runs and
# named in text; each group's number must appear on the archive page.
ARCHIVE_PAGE = "book/results_archive.html"

# The chapter that the smoke papermill run executes on two datasets.
SMOKE_CHAPTER = BOOK / "model.md"
SMOKE_DATASETS = ("ECG200", "Coffee")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # an Agg backend turns glued figures into text (TOOLCHAIN.md)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TVQ_CACHE_DIR", str(ROOT / ".cache" / "test-cache"))
    return env


def _run(args: list[str], timeout: int) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - start


def _tail(proc: subprocess.CompletedProcess, n: int = 4000) -> str:
    return (proc.stdout + "\n" + proc.stderr)[-n:]


def chapters() -> list[Path]:
    """Chapters in the table of contents, in order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return [ROOT / f"{f}.md" for f in files]


# ----------------------------------------------------------------------------------------
# Parameters and the tvq chapter command
# ----------------------------------------------------------------------------------------

def test_every_chapter_has_a_parameters_cell_read_by_chapter_config():
    for path in chapters():
        assert path.exists(), f"{path} is in _toc.yml but missing"
        nb = read_chapter(path)  # raises if not MyST or no parameters cell
        cells = [c for c in nb.cells if c.cell_type == "code"]
        params = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
        assert params, f"{path.name}: no parameters cell"
        source = cells[params[0]].source
        for key in ("dataset", "profile", "device", "seed"):
            assert re.search(rf"^{key}\s*=", source, re.M), f"{path.name}: parameters cell lacks {key}"
        # papermill cannot parse '=' or ';' inside a comment of the parameters cell
        for line in source.splitlines():
            comment = line.partition("#")[2]
            assert "=" not in comment and ";" not in comment, f"{path.name}: {line!r}"
        later = "\n".join(c.source for c in cells[params[0] + 1:])
        assert "chapter_config(globals())" in later, f"{path.name}: parameters never reach chapter_config"


def test_chapter_config_types_and_precedence():
    ns = {"dataset": "Coffee", "profile": "smoke", "device": "cpu", "seed": 3, "steps_uncond": 7,
          "not_a_field": object()}
    cfg = chapter_config(ns)
    assert (cfg.dataset, cfg.profile, cfg.seed, cfg.steps_uncond) == ("Coffee", "smoke", 3, 7)
    assert cfg.hidden_dim == 16  # from params/smoke.yaml, not the dataclass default (64)
    with pytest.raises(ConfigError, match="guidance"):
        chapter_config({"profile": "smoke", "guidance": "strong"})
    with pytest.raises(ConfigError, match="no params file"):
        chapter_config({"profile": "no_such_profile"})


def test_chapter_parameters_are_validated_and_typed():
    p = chapter_parameters("smoke", {"dataset": "Coffee", "guidance": "2"})
    assert p["dataset"] == "Coffee" and p["guidance"] == 2.0 and isinstance(p["guidance"], float)
    assert Path(p["params_file"]).name == "smoke.yaml" and p["profile"] == "smoke"
    assert default_output("book/x.md", p).name == "x_Coffee_smoke.ipynb"
    with pytest.raises(ConfigError, match="did you mean dataset"):
        chapter_parameters("smoke", {"datset": "Coffee"})
    with pytest.raises(ConfigError):
        chapter_parameters("smoke", {"seed": "one"})


def test_chapter_command_refuses_bad_input(tmp_path, capsys):
    assert cli.main(["chapter", str(tmp_path / "missing.md")]) == 2
    assert "chapter not found" in capsys.readouterr().err
    plain = tmp_path / "plain.md"
    plain.write_text("# not a notebook\n")
    assert cli.main(["chapter", str(plain)]) == 2
    assert "not a jupytext MyST notebook" in capsys.readouterr().err
    assert cli.main(["chapter", str(SMOKE_CHAPTER), "-p", "seed=x"]) == 2
    assert "seed" in capsys.readouterr().err
    assert cli.main(["chapter", str(SMOKE_CHAPTER), "-p", "dataset"]) == 2
    assert "key=value" in capsys.readouterr().err
    with pytest.raises(ChapterError, match=r"\.ipynb"):
        run_chapter(SMOKE_CHAPTER, "smoke", out=tmp_path / "out.txt")


@pytest.mark.parametrize("dataset", SMOKE_DATASETS)
def test_tvq_chapter_runs_a_chapter_with_papermill(dataset, tmp_path):
    out = tmp_path / "runs" / f"chapter_{dataset}.ipynb"
    proc, seconds = _run([str(BIN / "tvq"), "chapter", str(SMOKE_CHAPTER.relative_to(ROOT)),
                          "-f", "params/smoke.yaml", "-p", f"dataset={dataset}", "--out", str(out)], 600)
    assert proc.returncode == 0, _tail(proc)
    import nbformat

    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and f'dataset = "{dataset}"' in injected[0].source
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert f"'name': '{dataset}'" in text or dataset in text
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    print(f"tvq chapter {SMOKE_CHAPTER.name} on {dataset}: {seconds:.1f} s")


def test_dataset_chapter_runs_the_protocol_when_the_store_lacks_the_dataset(tmp_path):
    """The per-dataset chapter under papermill: no entry for (Coffee, smoke) in an empty store,
    so it runs the protocol into a temporary store and tells the whole story from it."""
    out = tmp_path / "dataset_Coffee.ipynb"
    env_store = tmp_path / "store"
    env_store.mkdir()
    proc = subprocess.run([str(BIN / "tvq"), "chapter", "book/dataset.md", "-f", "params/smoke.yaml",
                           "-p", "dataset=Coffee", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env={**_env(), "TVQ_RESULTS_DIR": str(env_store)})
    assert proc.returncode == 0, _tail(proc)
    import nbformat

    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert "FID, unconditional" in text and "TSTR %" in text
    # the run's table: each phase's minutes beside the torch threads it ran with
    assert "| phase | minutes | torch threads |" in text
    # under papermill, myst-nb's glue records a figure as "application/papermill.record/image/png"
    glued = {o.get("metadata", {}).get("scrapbook", {}).get("name") for o in outputs
             if any(k.endswith("image/png") for k in o.get("data", {}))}
    assert {"story_data", "story_loss", "story_bands", "story_samples", "story_gen_bands"} <= glued
    assert not any(env_store.iterdir()), "save=False must leave the store untouched"


def test_failing_cell_is_reported_with_the_kept_notebook(tmp_path):
    header = SMOKE_CHAPTER.read_text().split("---\n")[1]
    chapter = tmp_path / "broken.md"
    chapter.write_text("---\n" + header + "---\n\n# Broken\n\n"
                       "```{code-cell} ipython3\n:tags: [parameters]\n\nseed = 0\n```\n\n"
                       "```{code-cell} ipython3\nraise RuntimeError('boom')\n```\n")
    out = tmp_path / "broken.ipynb"
    with pytest.raises(ChapterError, match="RuntimeError: boom"):
        run_chapter(chapter, "smoke", out=out)
    assert out.exists()


# ----------------------------------------------------------------------------------------
# nbval over the whole book
# ----------------------------------------------------------------------------------------

def test_nbval_runs_every_chapter():
    proc, seconds = _run([PY, "-m", "pytest", "--nbval-lax", "book/", "-q", "-p", "no:cacheprovider",
                          "--nbval-cell-timeout", "600"], 1500)
    assert proc.returncode == 0, _tail(proc)
    m = re.search(r"(\d+) passed", proc.stdout)
    n_cells = sum(1 for p in chapters() for c in read_chapter(p).cells if c.cell_type == "code")
    assert m and int(m.group(1)) == n_cells, _tail(proc)
    print(f"nbval: {m.group(1)} cells in {seconds:.1f} s")


# ----------------------------------------------------------------------------------------
# The strict build and its HTML
# ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    proc, seconds = _run([str(BIN / "jupyter-book"), "build", ".", "-W", "-n", "--keep-going", "--all",
                          "--path-output", str(out)], 1500)
    assert proc.returncode == 0, _tail(proc, 8000)
    print(f"strict build: {seconds:.1f} s")
    return out / "_build" / "html"


def _pages(html_dir: Path) -> dict[str, str]:
    return {p.relative_to(html_dir).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted((html_dir / "book").glob("*.html"))}


def test_build_every_figure_is_an_image(built_html):
    pages = _pages(built_html)
    assert pages, "no chapter pages were built"
    n_figures = 0
    for name, text in pages.items():
        for fig in re.findall(r"<figure\b.*?</figure>", text, flags=re.S):
            n_figures += 1
            assert re.search(r"<img\b[^>]*src=\"[^\"]+\"", fig), f"{name}: a figure without an image:\n{fig[:500]}"
        # a glued figure that did not render shows up as its repr
        assert "&lt;Figure size" not in text and "<Figure size" not in text, f"{name}: figure rendered as text"
        for src in re.findall(r"<img\b[^>]*src=\"([^\"]+)\"", text):
            if not src.startswith(("http:", "https:", "data:")):
                assert (built_html / "book" / src).resolve().exists(), f"{name}: missing image {src}"
    assert n_figures >= len(FIGURES)


def test_build_has_the_thesis_figures_and_tables(built_html):
    text = "\n".join(_pages(built_html).values())
    for label in FIGURES:
        m = re.search(rf"<figure\b[^>]*id=\"{label}\".*?</figure>", text, flags=re.S)
        assert m, f"figure {label} missing"
        number = label.split("-")[1]
        assert re.search(rf"Figure {number}\.", html.unescape(m.group(0))), f"{label}: caption lacks its number"
    for label in PAIRED_FIGURES:
        m = re.search(rf"<figure\b[^>]*id=\"{label}\".*?</figure>", text, flags=re.S)
        assert m, f"figure {label} missing"
        first, second = label.split("-")[1:]
        assert f"Figures {first}–{second}" in html.unescape(m.group(0)), f"{label}: caption lacks its numbers"
    archive = html.unescape(_pages(built_html)[ARCHIVE_PAGE])
    for number in range(17, 25):
        assert f"Figure {number}" in archive, f"Figure {number} is not on the archive page"
    _run_charts_are_images_where_the_store_has_data(_pages(built_html)[ARCHIVE_PAGE])
    for label in TABLES:
        m = re.search(rf"<table\b[^>]*id=\"{label}\".*?</table>", text, flags=re.S)
        assert m, f"table {label} missing (or not rendered as a table)"
        assert m.group(0).count("<tr") >= 3, f"{label}: too few rows"
        number = label.split("-")[1]
        assert f"Table {number}." in html.unescape(m.group(0))


def _run_charts_are_images_where_the_store_has_data(page: str) -> None:
    """Figures 17-24: a group of 16 datasets with a full-budget entry in the store is an image
    (between the previous caption and its own), and a group without one says why, in words."""
    from tvq.data import all_datasets
    from tvq.results import entries

    df = entries(ROOT / "results", profile="thesis")
    stored = set(df[df["full_budget"]]["dataset"]) if not df.empty else set()
    ids = {d.name: d.id for d in all_datasets()}
    with_data = {17 + (ids[n] - 1) // 16 for n in stored}
    previous = 0
    for number in range(17, 25):
        drawn = page.find(f"<strong>Figure {number}.</strong>")
        if number in with_data:
            assert drawn > 0, f"Figure {number}: the store has its datasets, but the page has no drawn figure"
            assert re.search(r"<img\b[^>]*src=", page[previous:drawn]), f"Figure {number}: no image above its caption"
            previous = drawn
        else:
            said = page.find(f"<strong>Figure {number}</strong>")
            assert drawn < 0 and said > 0, f"Figure {number}: no data, so it must say so (not draw an empty figure)"
            assert "none has an entry" in html.unescape(page[said:said + 400])
            previous = said
    assert with_data, "the store holds no full-budget entry: nothing here checks that a run chart is an image"


def test_build_is_self_contained_and_clean(built_html):
    for name, text in _pages(built_html).items():
        scripts = re.findall(r"<script\b[^>]*src=\"([^\"]+)\"", text)
        if 'class="math' in text:  # Sphinx loads MathJax only on pages with math
            assert any("mathjax" in s and not s.startswith("http") for s in scripts), f"{name}: no local MathJax"
        assert not any(s.startswith(("http:", "https:", "//")) for s in scripts), f"{name}: remote script"
        assert "Traceback (most recent call last)" not in text, f"{name}: a cell raised"
        assert 'class="output traceback' not in text and "ansi-red-fg" not in text, f"{name}: error output"
    assert (built_html / "_static" / "mathjax" / "tex-chtml.js").exists()


def test_build_has_the_thesis_evaluators_checked_against_table5(built_html):
    """Every offline dataset has a TRTR row (computed during the build or read from the stored check),
    and each says whether it equals Table 5: the reader sees the check, not a claim."""
    from tvq.data import all_datasets, availability

    page = _pages(built_html)["book/metrics.html"]
    m = re.search(r"<table\b[^>]*id=\"table-lee2023-trtr\".*?</table>", page, flags=re.S)
    assert m, "the table of the thesis evaluators' TRTR is missing"
    body = html.unescape(m.group(0))
    rows = re.findall(r"<tr\b.*?</tr>", body, flags=re.S)[1:]
    offline = [i.name for i in all_datasets() if availability(i.name) == "offline"]
    assert len(rows) == len(offline)
    cells = [re.findall(r"<td\b[^>]*>(.*?)</td>", r, flags=re.S) for r in rows]
    verdicts = [re.sub(r"<[^>]+>", "", c[4]).strip() for c in cells]
    assert set(verdicts) <= {"yes", "no", "–"}
    assert verdicts.count("no") == 0, [c[0] for c, v in zip(cells, verdicts) if v == "no"]


# ----------------------------------------------------------------------------------------
# What a reader sees: the built pages in headless Chromium, after MathJax has run
# ----------------------------------------------------------------------------------------
def _chromium():
    from browser import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")


@pytest.mark.parametrize("width", [1280, 800])
def test_browser_every_page_renders_its_math_and_shows_all_its_content(built_html, width):
    _chromium()
    from browser import inspect_page

    problems = {}
    n_math = 0
    for page in sorted((built_html / "book").glob("*.html")):
        r = inspect_page(page, width=width)
        n_math += r["n_math"]
        found = {k: r[k] for k in ("merror", "clipped", "roles") if r[k]}
        if found:
            problems[page.name] = found
    assert n_math > 50, "MathJax typeset almost nothing: the check would see no equation"
    assert not problems, problems


def test_browser_check_catches_what_it_looks_for(built_html):
    """Planted on a copy of a real page: a \\tag inside a split block (MathJax's red error), an
    equation too wide for the column in a box that cannot scroll, and a role that leaked as text."""
    _chromium()
    from browser import inspect_page

    page = built_html / "book" / "inference.html"
    text = page.read_text(encoding="utf-8")
    wide = " + ".join(f"x_{{{i}}}" for i in range(120))
    planted = ('<div class="math notranslate nohighlight">\\[\\begin{split}a &= b\\\\ c &= d\\tag{99}\\end{split}\\]</div>'
               '<style>#planted-wide mjx-container { overflow: hidden !important; }</style>'
               f'<div id="planted-wide" class="math notranslate nohighlight">\\[{wide}\\]</div>'
               '<p>The entry of <code class="docutils literal notranslate">{glue:text}</code>name``.</p>')
    bad = page.with_name("planted-faults.html")
    bad.write_text(text.replace("<section", planted + "<section", 1), encoding="utf-8")
    try:
        r = inspect_page(bad)
    finally:
        bad.unlink()
    assert any("tag not allowed in split" in m for m in r["merror"]), r
    assert any("x0+x1+x2" in c for c in r["clipped"]), r
    assert r["roles"] == ["{glue:text}"], r


def test_the_publishing_workflow_builds_as_the_readme_says():
    """The deployed site is built by the README's own set-up and build commands, word for word."""
    import yaml

    readme = (ROOT / "README.md").read_text()
    build = re.search(r"`(jupyter-book build [^`]+)`", readme).group(1)
    setup = re.search(r"```bash\n(python3 -m venv [^\n]+)\n```", readme).group(1)
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    runs = [s.get("run", "") for s in wf["jobs"]["build"]["steps"]]
    assert any(r == setup for r in runs), runs
    assert any(r.endswith(build) for r in runs), runs
    uploads = [s for s in wf["jobs"]["build"]["steps"] if "upload-pages-artifact" in s.get("uses", "")]
    assert uploads and uploads[0]["with"]["path"] == "_build/html"
