"""The equation index is consistent: every numbered equation of the thesis is in exactly one of
three groups, and each group keeps its promise.

* implemented: tagged with ``@implements`` on a ``tvq`` function, and checked by a test marker
  or a book cell;
* ``CHECKED_ONLY``: not computed by ``tvq``, but a book cell checks it with ``verify("N", ...)``;
* ``NOT_COMPUTABLE``: computed and checked by nothing, with the reason.

The sources are ``tvq.equations.registry()``, the two dicts of ``tvq.equations``, the
``@pytest.mark.equation`` markers in ``tests/`` and the ``verify("N", ...)`` calls in ``book/``.
The rules live in ``tvq.notebook.equation_index_problems`` (the book's equation index runs the
same function); each rule has a test on the repository and a test on made-up sources that
shows it reports what it should.
"""
from __future__ import annotations

import pytest

from tvq.equations import CHECKED_ONLY, KINDS, NOT_COMPUTABLE, registry, verify
from tvq.notebook import (INDEX_RULES, THESIS_EQUATIONS, checks_in_book, checks_in_tests, equation_index_problems,
                          equation_labels)


@pytest.fixture(scope="module")
def implemented() -> dict:
    return registry()


@pytest.fixture(scope="module")
def in_tests() -> dict[str, list[str]]:
    return checks_in_tests()


@pytest.fixture(scope="module")
def in_book() -> dict[str, list[str]]:
    return checks_in_book()


@pytest.fixture(scope="module")
def problems(implemented, in_tests, in_book) -> dict[str, list[str]]:
    return equation_index_problems(implemented, CHECKED_ONLY, NOT_COMPUTABLE, in_tests, in_book)


def where(eq: str, in_tests: dict, in_book: dict) -> str:
    found = in_tests.get(eq, []) + [f"book/{c}.md" for c in in_book.get(eq, [])]
    return ", ".join(found) or "nowhere"


def fake_book(tmp_path, text: str):
    """A book folder with one chapter whose only content is ``text``; its scanned checks."""
    book = tmp_path / "book"
    book.mkdir()
    (book / "ch.md").write_text(f"```{{code-cell}}\n{text}\n```\n")
    return checks_in_book(book)


# Small made-up sources for the rule tests: the thesis has equations 1-4; 1 is implemented, 2
# is checked only, 3 and 4 are not computable. With these, every rule holds.
TOY_EQUATIONS = ("1", "2", "3", "4")
TOY = dict(implemented={"1": ["tvq.x.f"]}, checked_only={"2": "Background: checked in ch."},
           not_computable={"3": "Definition: a set.", "4": "Structure: a product."},
           in_tests={"1": ["test_x.py::test_f"]}, in_book={"2": ["ch"]})


def toy_problems(**changes) -> dict[str, list[str]]:
    return equation_index_problems(**{**TOY, **changes}, equations=TOY_EQUATIONS)


def test_the_toy_sources_break_no_rule():
    assert toy_problems() == {rule: [] for rule in INDEX_RULES}


# -- the three groups are disjoint and cover 1..74 --------------------------------------------------

def test_every_thesis_equation_is_in_one_of_the_three_groups(problems):
    assert not problems["unexplained"], (
        "neither implemented, nor in CHECKED_ONLY, nor in NOT_COMPUTABLE: "
        + ", ".join(f"Eq. ({eq})" for eq in problems["unexplained"]))


def test_the_three_groups_are_disjoint(problems, implemented):
    groups = {"implemented": implemented, "CHECKED_ONLY": CHECKED_ONLY, "NOT_COMPUTABLE": NOT_COMPUTABLE}
    assert not problems["overlap"], "in more than one group: " + ", ".join(
        f"Eq. ({eq}) in {' and '.join(name for name, g in groups.items() if eq in g)}" for eq in problems["overlap"])


def test_the_three_groups_hold_exactly_the_thesis_equations(implemented):
    together = set(implemented) | set(CHECKED_ONLY) | set(NOT_COMPUTABLE)
    assert together == set(THESIS_EQUATIONS)
    assert len(implemented) + len(CHECKED_ONLY) + len(NOT_COMPUTABLE) == len(THESIS_EQUATIONS) == 74


def test_the_cover_and_disjointness_rules_can_fail():
    assert toy_problems(not_computable={"3": "Definition: a set."})["unexplained"] == ["4"]
    both = toy_problems(checked_only={"2": "Background: x.", "3": "Background: y."})
    assert both["overlap"] == ["3"]
    assert toy_problems(implemented={"1": ["f"], "2": ["g"]})["overlap"] == ["2"]


# -- implemented equations are checked --------------------------------------------------------------

def test_every_implemented_equation_has_a_check(problems, implemented):
    assert not problems["unchecked"], (
        "tagged with @implements but checked by no test marker and no verify() in the book: "
        + ", ".join(f"Eq. ({eq}) [{', '.join(i.qualname for i in implemented[eq])}]" for eq in problems["unchecked"]))


def test_the_unchecked_rule_can_fail():
    assert toy_problems(in_tests={})["unchecked"] == ["1"]
    assert toy_problems(in_tests={}, in_book={"1": ["ch"], "2": ["ch"]})["unchecked"] == []


# -- CHECKED_ONLY equations are checked in the book -------------------------------------------------

def test_every_checked_only_equation_has_a_book_check(problems):
    assert not problems["checked_only_without_book_check"], (
        "in CHECKED_ONLY but no book cell calls verify() for: "
        + ", ".join(f"Eq. ({eq})" for eq in problems["checked_only_without_book_check"]))


def test_the_checked_only_rule_can_fail(tmp_path):
    in_book = fake_book(tmp_path, "verify('1', a, b)")
    assert toy_problems(in_book=in_book)["checked_only_without_book_check"] == ["2"]
    # a unit test marker is not a book check
    assert toy_problems(in_book={}, in_tests={"1": ["t"], "2": ["t"]})["checked_only_without_book_check"] == ["2"]


# -- no check names an equation that is neither implemented nor CHECKED_ONLY -----------------------

def test_every_check_names_an_implemented_or_checked_only_equation(problems, in_tests, in_book):
    assert not problems["orphan"], (
        "checks name equations that are neither implemented nor in CHECKED_ONLY "
        "(move them to CHECKED_ONLY if the check is real): "
        + ", ".join(f"Eq. ({eq}) in {where(eq, in_tests, in_book)}" for eq in problems["orphan"]))


def test_the_orphan_rule_can_fail(tmp_path):
    in_book = fake_book(tmp_path, 'verify("2", a, b)\nverify("3", a, b)')   # 3 is not computable
    assert toy_problems(in_book=in_book)["orphan"] == ["3"]
    assert toy_problems(in_tests={"1": ["t"], "4": ["t"]})["orphan"] == ["4"]


# -- numbers and reasons ----------------------------------------------------------------------------

def test_every_equation_number_is_a_thesis_number(problems):
    assert not problems["unknown"], ("not numbered equations of the thesis (1-74): "
                                     + ", ".join(f"({eq})" for eq in problems["unknown"]))


def test_the_unknown_number_rule_can_fail(tmp_path):
    in_book = fake_book(tmp_path, 'verify("2", a, b)\nverify("75", a, b)')
    assert toy_problems(in_book=in_book)["unknown"] == ["75"]
    assert toy_problems(not_computable={**TOY["not_computable"], "9": "Definition: x."})["unknown"] == ["9"]


@pytest.mark.parametrize("name, reasons", [("CHECKED_ONLY", CHECKED_ONLY), ("NOT_COMPUTABLE", NOT_COMPUTABLE)])
def test_every_reason_starts_with_its_kind_and_says_something(name, reasons):
    for eq, reason in reasons.items():
        kind, sep, rest = reason.partition(": ")
        assert sep and kind in KINDS, f"{name}[{eq!r}]: reason must start with one of {KINDS} and ': ': {reason!r}"
        assert len(rest) > 10, f"{name}[{eq!r}]: reason too short: {reason!r}"


def test_checked_only_reasons_say_where_the_check_is():
    places = ("chapter", "appendix")
    vague = [eq for eq, reason in CHECKED_ONLY.items() if not any(p in reason for p in places)]
    assert not vague, f"CHECKED_ONLY reasons that do not name the chapter or appendix of the check: {vague}"


# -- the registry and the scanners ------------------------------------------------------------------

def test_implementations_name_real_functions(implemented):
    import importlib

    for eq, impls in implemented.items():
        for impl in impls:
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


def test_the_book_scanner_sees_only_literal_equation_numbers(tmp_path):
    # verify(eq, ...) with a variable is invisible to the index: chapters must spell the number
    assert fake_book(tmp_path, 'for eq in ("5", "6"):\n    verify(eq, a, b)') == {}


def test_verify_fails_loudly():
    assert verify("1", [1.0, 2.0], [1.0, 2.0 + 1e-9]) < 1e-8
    with pytest.raises(AssertionError, match=r"Eq\. \(1\)"):
        verify("1", [1.0], [1.1])
    with pytest.raises(AssertionError, match="shapes differ"):
        verify("1", [1.0, 2.0], [1.0])
