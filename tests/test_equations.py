"""The equation index is consistent: every numbered equation of the thesis is either
implemented by a tagged ``tvq`` function and checked, or listed as not computed with a reason.

Three sources are compared (``tvq.equations.registry()``, the ``@pytest.mark.equation``
markers in ``tests/`` and the ``verify("N", ...)`` calls in ``book/``). A tagged equation
without a check, a check naming an equation nothing implements, or an equation that is
neither implemented nor explained each fail here, with the equation number in the message.
"""
from __future__ import annotations

import re

import pytest

from tvq.equations import NOT_COMPUTABLE, registry, verify
from tvq.notebook import THESIS_EQUATIONS, checks_in_book, checks_in_tests, equation_labels

KINDS = ("Definition", "Background", "Structure", "Derivation", "Restatement", "Not used")


@pytest.fixture(scope="module")
def implemented() -> dict:
    return registry()


@pytest.fixture(scope="module")
def checks() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for source in (checks_in_tests(), checks_in_book()):
        for eq, where in source.items():
            out.setdefault(eq, []).extend(where)
    return out


def test_every_implemented_equation_has_a_check(implemented, checks):
    unchecked = sorted((eq for eq in implemented if eq not in checks), key=int)
    assert not unchecked, (
        "tagged with @implements but checked by no test marker and no verify() in the book: "
        + ", ".join(f"Eq. ({eq}) [{', '.join(i.qualname for i in implemented[eq])}]" for eq in unchecked))


def test_every_check_names_an_implemented_equation(implemented, checks):
    orphans = sorted((eq for eq in checks if eq not in implemented), key=lambda e: int(re.sub(r"\D", "", e) or 0))
    assert not orphans, ("checks name equations that no tvq function implements: "
                         + ", ".join(f"Eq. ({eq}) in {', '.join(checks[eq])}" for eq in orphans))


def test_every_thesis_equation_is_implemented_or_explained(implemented):
    missing = [eq for eq in THESIS_EQUATIONS if eq not in implemented and eq not in NOT_COMPUTABLE]
    assert not missing, f"neither implemented nor listed in NOT_COMPUTABLE: {', '.join(missing)}"


def test_not_computable_is_disjoint_from_implemented_and_explained(implemented):
    both = sorted(set(NOT_COMPUTABLE) & set(implemented), key=int)
    assert not both, f"listed as not computable but implemented by tvq: {both}"
    for eq, reason in NOT_COMPUTABLE.items():
        assert eq in THESIS_EQUATIONS, f"NOT_COMPUTABLE names Eq. ({eq}), which the thesis does not have"
        assert reason.startswith(KINDS), f"Eq. ({eq}): reason must start with one of {KINDS}: {reason!r}"
        assert len(reason) > len("Definition: ") + 10, f"Eq. ({eq}): reason too short"


def test_equation_numbers_are_thesis_numbers(implemented, checks):
    for eq in list(implemented) + list(checks):
        assert eq in THESIS_EQUATIONS, f"Eq. ({eq}) is not a numbered equation of the thesis (1-74)"


def test_implementations_name_real_functions(implemented):
    import importlib

    for eq, impls in implemented.items():
        for impl in impls:
            module, _, rest = impl.qualname.partition(".")
            # walk the dotted path: tvq.diffusion.posterior or tvq.vqvae.Stage1.split
            parts = impl.qualname.split(".")
            for cut in range(len(parts) - 1, 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                except ModuleNotFoundError:
                    continue
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
                break
            assert callable(obj), f"Eq. ({eq}): {impl.qualname} is not callable"


def test_displayed_equations_carry_their_labels_once():
    labels = equation_labels()
    for eq in labels:
        assert eq in THESIS_EQUATIONS


def test_scanners_find_markers_and_verify_calls(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text(
        "import pytest\n\n@pytest.mark.equation('7', \"8\")\ndef test_a():\n    pass\n\n"
        "def test_b():\n    pass\n")
    book = tmp_path / "book"
    book.mkdir()
    (book / "ch.md").write_text("```{code-cell}\nverify('12', a, b)\nverify(\"13\",a,b)\n```\n(eq-12)=\n$$x$$\n")
    assert checks_in_tests(tests) == {"7": ["test_x.py::test_a"], "8": ["test_x.py::test_a"]}
    assert checks_in_book(book) == {"12": ["ch"], "13": ["ch"]}
    assert equation_labels(book) == {"12": "ch"}


def test_verify_fails_loudly():
    assert verify("1", [1.0, 2.0], [1.0, 2.0 + 1e-9]) < 1e-8
    with pytest.raises(AssertionError, match=r"Eq\. \(1\)"):
        verify("1", [1.0], [1.1])
    with pytest.raises(AssertionError, match="shapes differ"):
        verify("1", [1.0, 2.0], [1.0])
