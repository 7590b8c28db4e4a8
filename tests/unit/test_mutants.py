"""The mutation check's list still applies to today's code (so `make test` notices a refactor
that moved a mutant's code), and its runner tells killed, survived and broken apart. The
mutants themselves run only in `make mutate`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.mutation.__main__ import Result, Run, classify, first_failure, union_of
from tests.mutation.mutants import MUTANTS, Mutant, MutantDoesNotApply

ROOT = Path(__file__).resolve().parents[2]
BY_NAME = {mutant.name: mutant for mutant in MUTANTS}


def test_mutant_names_are_unique_and_every_one_says_why() -> None:
    assert len(BY_NAME) == len(MUTANTS)
    for mutant in MUTANTS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", mutant.name), mutant.name
        assert mutant.why.strip()
        assert "\n" not in mutant.why
        assert mutant.tests, mutant.name


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.name)
def test_the_mutant_applies_once_and_changes_the_code(mutant: Mutant) -> None:
    source = mutant.file_in(ROOT).read_text()

    assert source.count(mutant.find) == 1, f"{mutant.name}: update its `find`"
    assert mutant.replace != mutant.find
    mutated = mutant.apply_to(source)
    assert mutated != source
    compile(mutated, str(mutant.file_in(ROOT)), "exec")  # still Python


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.name)
def test_the_mutants_tests_exist(mutant: Mutant) -> None:
    for test in mutant.tests:
        path, _, node = test.partition("::")
        assert (ROOT / path).is_file(), test
        if node:
            function = node.split("::")[-1].split("[")[0]
            assert re.search(rf"^(async )?def {function}\(", (ROOT / path).read_text(), re.M), test


def test_a_find_that_is_not_there_once_is_refused_naming_the_mutant() -> None:
    mutant = MUTANTS[0]
    for source in ("", mutant.find * 2):
        with pytest.raises(MutantDoesNotApply, match=mutant.name):
            mutant.apply_to(source)


def test_the_baseline_runs_each_test_once() -> None:
    first, second = (
        Mutant("a", "why", "x.py", "f", "r", ("tests/a.py", "tests/b.py::test_one")),
        Mutant("b", "why", "x.py", "f", "r", ("tests/a.py::test_two", "tests/b.py::test_one")),
    )

    assert union_of([first, second]) == ["tests/a.py", "tests/b.py::test_one"]


SUMMARY = """\
.....F
=========================== short test summary info ============================
FAILED tests/integration/test_cancel.py::test_a_cancel_releases_the_daily_limit_hold - assert 1
!!!!!!!!!!!!!!!!!!!!!!!!!! stopping after 1 failures !!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


@pytest.mark.parametrize(
    ("returncode", "output", "result"),
    [
        pytest.param(1, SUMMARY, Result.KILLED, id="tests-failed"),
        pytest.param(0, "6 passed", Result.SURVIVED, id="tests-passed"),
        pytest.param(1, "ERROR tests/a.py::test_x - RuntimeError", Result.ERROR, id="setup-error"),
        pytest.param(2, "ERROR collecting tests/a.py", Result.ERROR, id="collection-error"),
        pytest.param(4, "usage", Result.ERROR, id="usage-error"),
        pytest.param(5, "no tests ran", Result.ERROR, id="nothing-collected"),
        pytest.param(None, "", Result.ERROR, id="timed-out"),
    ],
)
def test_only_a_failed_test_kills_a_mutant(
    returncode: int | None, output: str, result: Result
) -> None:
    assert classify(Run(returncode, output, 1.0), 600)[0] is result


def test_a_killed_mutant_names_its_first_failing_test() -> None:
    assert first_failure(SUMMARY) == (
        "tests/integration/test_cancel.py::test_a_cancel_releases_the_daily_limit_hold"
    )
