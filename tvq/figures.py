"""Small helpers the book's chapters share: figure style, gluing, tables, source listings, diagrams.

Nothing here computes a thesis quantity; the chapters call :mod:`tvq` for that. These
functions only put results on the page in one consistent way:

* :func:`glue_figure` hands a Matplotlib figure to MyST-NB under a name (the chapter
  shows it with ``{glue:figure}``) and closes it so it is not drawn twice;
* :func:`markdown_table` turns rows into a Markdown table (``{glue:md}`` renders it as a
  real HTML table, so the numbers stay selectable);
* :func:`show_source` displays the source of a ``tvq`` function next to its equation;
* :func:`box`, :func:`arrow` draw the block diagrams (Figures 1, 3, 8-11) whose shapes
  come from forward passes of the real modules.
"""
from __future__ import annotations

import inspect
import textwrap
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = ["STYLE", "use_style", "glue_figure", "glue_value", "markdown_table", "show_source",
           "source_markdown", "box", "arrow", "fmt_shape", "fmt_count", "run_chart"]

# One palette for every chapter: LF blue, HF orange, real data grey, noise purple.
STYLE = {
    "lf": "#1f77b4",
    "hf": "#ff7f0e",
    "data": "#555555",
    "noise": "#9467bd",
    "model": "#2ca02c",
    "accent": "#d62728",
    "box": "#eef3fb",
    "box_edge": "#2b4c7e",
}


def use_style() -> None:
    """Matplotlib defaults for the book: readable fonts, no top/right spines, tight layout."""
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 110,
        "font.size": 10,
        "axes.titlesize": 10,
        "axes.labelsize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "figure.constrained_layout.use": True,
    })


def glue_figure(name: str, fig: Any) -> None:
    """Glue ``fig`` under ``name`` for a ``{glue:figure}`` directive and close it.

    Closing matters: an open figure is drawn a second time at the end of the cell.
    """
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(name, fig, display=False)
    plt.close(fig)


def glue_value(name: str, value: Any, fmt: str | None = None) -> None:
    """Glue a number or string for inline use with ``{glue:text}``."""
    from myst_nb import glue

    glue(name, format(value, fmt) if fmt else value, display=False)


def markdown_table(rows: Iterable[Sequence[Any]], headers: Sequence[str],
                   align: Sequence[str] | None = None, empty: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; ``align`` holds ``l``, ``r`` or ``c`` per column.

    With no rows and ``empty`` given, the table keeps its header and holds one row that says
    ``empty`` (the other cells "–"): a ``{table}`` directive around a glued table needs exactly
    one table, so a chapter whose results are not there yet must still glue one.
    """
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    align = align or ["l"] * len(headers)
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "| " + " | ".join(rule[a] for a in align) + " |"]
    rows = [list(r) for r in rows]
    if not rows and empty is not None:
        rows = [[empty] + ["–"] * (len(headers) - 1)]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells, the header {len(headers)}")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def source_markdown(obj: Callable | type, *, drop_docstring: bool = False) -> str:
    """The source of ``obj`` as a fenced Python block, with where it lives above it."""
    src = textwrap.dedent(inspect.getsource(obj))
    if drop_docstring and obj.__doc__:
        head, sep, rest = src.partition('"""')
        if sep:
            _, sep2, after = rest.partition('"""')
            if sep2:
                src = head.rstrip() + "\n" + after.lstrip("\n")
                src = "\n".join(line for line in src.splitlines() if line.strip() != "")
    name = f"{obj.__module__}.{obj.__qualname__}"
    try:
        line = inspect.getsourcelines(obj)[1]
        where = f"`{name}` (`{obj.__module__.replace('.', '/')}.py`, line {line})"
    except (OSError, TypeError):  # pragma: no cover - builtins
        where = f"`{name}`"
    return f"{where}\n\n```python\n{src.rstrip()}\n```\n"


def show_source(*objs: Callable | type, drop_docstring: bool = False) -> None:
    """Display the source of one or more ``tvq`` functions in the executed chapter."""
    from IPython.display import Markdown, display

    display(Markdown("\n".join(source_markdown(o, drop_docstring=drop_docstring) for o in objs)))


def fmt_shape(shape: Iterable[int], names: Sequence[str] | None = None) -> str:
    """``(B, 5, 153, 2)`` or, with names, ``(B, H=5, W=153, C=2)``; the batch is always ``B``."""
    dims = list(shape)[1:]
    if names is None:
        return "(B, " + ", ".join(str(d) for d in dims) + ")"
    return "(B, " + ", ".join(f"{n}={d}" for n, d in zip(names, dims)) + ")"


def fmt_count(n: int) -> str:
    """Parameter counts the way Table 2 prints them: ``534 k``, ``4.12 mill``."""
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} mill"
    if n >= 1_000:
        return f"{n / 1e3:.0f} k"
    return str(n)


# ----------------------------------------------------------------------------------------
# Diagrams
# ----------------------------------------------------------------------------------------

def box(ax: Any, xy: tuple[float, float], text: str, *, width: float = 1.6, height: float = 0.7,
        color: str | None = None, edge: str | None = None, fontsize: float = 9, **kwargs: Any) -> tuple[float, float]:
    """Draw a rounded box centred at ``xy`` with ``text``; return its centre."""
    from matplotlib.patches import FancyBboxPatch

    x, y = xy
    patch = FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                           boxstyle="round,pad=0.02,rounding_size=0.08",
                           facecolor=color or STYLE["box"], edgecolor=edge or STYLE["box_edge"],
                           linewidth=1.2, **kwargs)
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return xy


def arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], text: str = "", *,
          color: str = "#333333", offset: tuple[float, float] = (0.0, 0.12), fontsize: float = 8,
          style: str = "-|>", linestyle: str = "-", connection: str = "arc3") -> None:
    """Draw an arrow from ``start`` to ``end`` with an optional label at its middle."""
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle=style, color=color, lw=1.2, linestyle=linestyle,
                                shrinkA=0, shrinkB=0, connectionstyle=connection))
    if text:
        mx, my = (start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1]
        ax.text(mx, my, text, ha="center", va="bottom", fontsize=fontsize, color=color)


def run_chart(ax: Any, x: np.ndarray, *, color: str = STYLE["data"], alpha: float = 0.15,
              lw: float = 0.6, title: str | None = None) -> None:
    """Overlay many series on one axis (the thesis's 'run chart' of a dataset)."""
    x = np.asarray(x)
    t = np.arange(x.shape[-1])
    ax.plot(t, x.T, color=color, alpha=alpha, lw=lw)
    if title:
        ax.set_title(title)
    ax.set_xlim(0, x.shape[-1] - 1)
