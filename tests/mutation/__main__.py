"""Run the mutation check: `python -m tests.mutation [--only NAME]... [--jobs N]`.

First the union of the mutants' tests runs on an unmutated copy of `src/` (it must pass, or
nothing is measured); then each mutant is applied to a fresh copy of `src/` in a temporary
directory and its tests run with that copy first on PYTHONPATH (ahead of the editable
install's path entry; checked for each run by importing the module and reading its
`__file__`). The real `src/` is never written to.

A mutant is killed when pytest exits 1 with a failed test; it survived when pytest exits 0;
anything else (a module that no longer imports, a collection or usage error, only setup
errors, an interruption, the timeout) is an ERROR: a mutant that breaks imports is not killed
by a test. The exit status is 0 only when every mutant was killed.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tests.mutation.mutants import MUTANTS, PACKAGE, Mutant, MutantDoesNotApply, by_name

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PYTEST = (sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider")
DEFAULT_TIMEOUT_SECONDS = 600.0
IMPORT_TIMEOUT_SECONDS = 120.0
GRACE_SECONDS = 15.0
"""How long an interrupted pytest gets to tear down (stop its redis-server) before SIGKILL."""
OUTPUT_TAIL_LINES = 40
PYTEST_EXIT_MEANINGS = {
    2: "interrupted: a collection error, or the session gave up",
    3: "internal error",
    4: "usage error",
    5: "no tests collected",
}


class Result(enum.Enum):
    KILLED = "killed"
    SURVIVED = "SURVIVED"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class Run:
    returncode: int | None
    """None when the command was stopped at its timeout."""
    output: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Outcome:
    mutant: Mutant
    result: Result
    seconds: float
    detail: str
    """The first failing test of a killed mutant; why an ERROR is one."""
    output: str = ""


class Children:
    """The process groups this runner started and has not seen end, so that an interrupt
    can stop all of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[str]] = set()

    def add(self, process: subprocess.Popen[str]) -> None:
        with self._lock:
            self._live.add(process)

    def discard(self, process: subprocess.Popen[str]) -> None:
        with self._lock:
            self._live.discard(process)

    def kill_all(self) -> None:
        with self._lock:
            live = list(self._live)
        for process in live:
            _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[str], signum: int) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def run_bounded(
    command: Sequence[str], env: dict[str, str], timeout: float, children: Children
) -> Run:
    """Run `command` in its own process group from the repository root, its output captured;
    at `timeout` the group gets SIGINT (pytest tears down), then SIGKILL after a grace."""
    started = time.monotonic()
    process = subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    children.add(process)
    returncode: int | None = None
    output = ""
    try:
        try:
            output, _ = process.communicate(timeout=timeout)
            returncode = process.returncode
        except subprocess.TimeoutExpired:
            output = _stop(process)
    finally:
        if process.poll() is None:  # an exception (an interrupt) while it ran
            _signal_group(process, signal.SIGKILL)
            process.wait()
        children.discard(process)
    return Run(returncode, output, time.monotonic() - started)


def _stop(process: subprocess.Popen[str]) -> str:
    """SIGINT to the group, then SIGKILL; what it printed until then."""
    for signum in (signal.SIGINT, signal.SIGKILL):
        _signal_group(process, signum)
        try:
            output, _ = process.communicate(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            continue
        return output
    process.kill()
    process.wait()
    return ""


def tail(output: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


def copy_src(into: Path) -> Path:
    """A copy of `src/` in `into` (without bytecode or build metadata); returns `into`."""
    shutil.copytree(
        SRC, into / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    )
    return into


def env_for(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    existing = env.get("PYTHONPATH")
    first = str(copy / "src")
    env["PYTHONPATH"] = first if not existing else os.pathsep.join((first, existing))
    return env


def imports_from(copy: Path, module: str, children: Children) -> tuple[str | None, str]:
    """(None, output) when `module` imports from `copy` with `env_for(copy)`, else (what went
    wrong, output)."""
    code = f"import importlib; print(importlib.import_module({module!r}).__file__)"
    run = run_bounded((sys.executable, "-c", code), env_for(copy), IMPORT_TIMEOUT_SECONDS, children)
    lines = run.output.strip().splitlines()
    if run.returncode != 0:
        return f"{module} does not import ({lines[-1] if lines else run.returncode})", run.output
    found = Path(lines[-1]).resolve() if lines else None
    expected = copy / PACKAGE
    if found is None or not found.is_relative_to(expected.resolve()):
        return (
            f"{module} was imported from {found}, not from the copy under {expected}: "
            "PYTHONPATH does not take precedence over the installed package"
        ), run.output
    return None, run.output


def first_failure(output: str) -> str | None:
    """The node id of the first FAILED line of pytest's short summary (`-ra`)."""
    for line in output.splitlines():
        if line.startswith("FAILED "):
            return line.removeprefix("FAILED ").split(" - ", 1)[0].strip()
    return None


def classify(run: Run, timeout: float) -> tuple[Result, str]:
    if run.returncode is None:
        return Result.ERROR, f"timed out after {timeout:.0f} s"
    if run.returncode == 0:
        return Result.SURVIVED, "all its tests passed"
    if run.returncode == 1:
        failed = first_failure(run.output)
        if failed is not None:
            return Result.KILLED, failed
        return Result.ERROR, "pytest exited 1 without a failed test (an error in setup/teardown)"
    meaning = PYTEST_EXIT_MEANINGS.get(run.returncode, "unexpected exit status")
    return Result.ERROR, f"pytest exited {run.returncode} ({meaning})"


def union_of(mutants: Iterable[Mutant]) -> list[str]:
    """Every listed test once, in order; a node id is dropped when its whole file is listed."""
    listed = list(dict.fromkeys(test for mutant in mutants for test in mutant.tests))
    files = {test for test in listed if "::" not in test}
    return [test for test in listed if "::" not in test or test.split("::")[0] not in files]


def missing_tests(mutant: Mutant) -> list[str]:
    return [test for test in mutant.tests if not (ROOT / test.split("::")[0]).is_file()]


def check_mutant(mutant: Mutant, timeout: float, children: Children) -> Outcome:
    """Apply `mutant` to a fresh copy of `src/` and run its tests against the copy."""
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"mutant-{mutant.name}-"))
    try:
        copy = copy_src(workdir)
        target = mutant.file_in(copy)
        target.write_text(mutant.apply_to(target.read_text()))
        problem, output = imports_from(copy, mutant.module, children)
        if problem is not None:
            return Outcome(mutant, Result.ERROR, time.monotonic() - started, problem, output)
        run = run_bounded((*PYTEST, *mutant.tests), env_for(copy), timeout, children)
        result, detail = classify(run, timeout)
        return Outcome(mutant, result, time.monotonic() - started, detail, run.output)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def baseline(mutants: Sequence[Mutant], timeout: float, children: Children) -> str | None:
    """None when the union of the mutants' tests passes on an unmutated copy, else why not."""
    workdir = Path(tempfile.mkdtemp(prefix="mutant-baseline-"))
    try:
        copy = copy_src(workdir)
        problem, output = imports_from(copy, "payments_api", children)
        if problem is not None:
            return f"{problem}\n{tail(output)}"
        tests = union_of(mutants)
        print(f"baseline: {len(tests)} test paths on unmutated code ...", flush=True)
        run = run_bounded((*PYTEST, *tests), env_for(copy), timeout, children)
        print(f"baseline: exit {run.returncode} in {run.seconds:.0f} s", flush=True)
        if run.returncode != 0:
            return f"the baseline did not pass (exit {run.returncode}):\n{tail(run.output)}"
        return None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(outcomes: Sequence[Outcome]) -> None:
    width = max(len(o.mutant.name) for o in outcomes)
    print()
    print(f"{'mutant':<{width}}  {'result':<8}  {'seconds':>7}  first failing test / reason")
    for o in outcomes:
        print(f"{o.mutant.name:<{width}}  {o.result.value:<8}  {o.seconds:>7.1f}  {o.detail}")
    killed = sum(o.result is Result.KILLED for o in outcomes)
    print(f"\nkill rate: {killed}/{len(outcomes)} ({100 * killed / len(outcomes):.0f}%)")
    for o in outcomes:
        if o.result is Result.SURVIVED:
            tests = " ".join(o.mutant.tests)
            print(f"\nSURVIVED {o.mutant.name}: {o.mutant.why}\n  its tests: {tests}")
        elif o.result is Result.ERROR:
            print(f"\nERROR {o.mutant.name}: {o.detail}\n{tail(o.output)}")


def run_all(
    mutants: Sequence[Mutant], jobs: int, timeout: float, children: Children
) -> list[Outcome] | None:
    """The baseline, then every mutant (`jobs` at once); None when the baseline fails."""
    problem = baseline(mutants, timeout, children)
    if problem is not None:
        print(f"aborting: {problem}", file=sys.stderr)
        return None
    outcomes: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures: list[Future[Outcome]] = [
            pool.submit(check_mutant, mutant, timeout, children) for mutant in mutants
        ]
        try:
            for future in as_completed(futures):
                outcome = future.result()
                outcomes[outcome.mutant.name] = outcome
                print(
                    f"{outcome.mutant.name}: {outcome.result.value} "
                    f"({outcome.seconds:.0f} s) {outcome.detail}",
                    flush=True,
                )
        except BaseException:
            for future in futures:
                future.cancel()
            children.kill_all()
            raise
    return [outcomes[mutant.name] for mutant in mutants]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__)
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this mutant")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds per pytest run, the baseline's included (default %(default).0f)",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name}: {mutant.why}")
        return 0
    try:
        mutants = [by_name(name) for name in args.only] if args.only else list(MUTANTS)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    originals: dict[Path, str] = {}
    for mutant in mutants:
        path = mutant.file_in(ROOT)
        originals[path] = path.read_text()
        try:
            mutant.apply_to(originals[path])
        except MutantDoesNotApply as exc:
            print(f"refusing to run: {exc}", file=sys.stderr)
            return 2
        if missing := missing_tests(mutant):
            print(f"refusing to run: mutant {mutant.name!r} lists {missing}", file=sys.stderr)
            return 2

    children = Children()
    started = time.monotonic()
    try:
        outcomes = run_all(mutants, args.jobs, args.timeout, children)
    except KeyboardInterrupt:
        children.kill_all()
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        changed = [path for path, text in originals.items() if path.read_text() != text]
    if changed:  # never expected: the runner writes only to copies
        print(f"refusing the result: {changed} changed during the run", file=sys.stderr)
        return 2
    if outcomes is None:
        return 2
    report(outcomes)
    print(f"total: {time.monotonic() - started:.0f} s with --jobs {args.jobs}")
    return 0 if all(o.result is Result.KILLED for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
