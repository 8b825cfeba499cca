"""Mutation testing, run by hand (not in CI): each curated mutant (tests/mutation/mutants.py) is applied
alone to a copy of the repository, and the tests that must catch it are run there.

    .venv/bin/python tests/mutation/run.py                  # every mutant
    .venv/bin/python tests/mutation/run.py retry max-tokens # the mutants whose name holds one of the words
    .venv/bin/python tests/mutation/run.py --list

First the targeted tests run on the unmutated copy (they must pass, or a kill would prove nothing);
then each mutant is killed (its tests failed: the failing tests are listed), survived (they passed),
stale (its snippet is no longer in the code), timed out, or an error (pytest could not run its tests, or
selected none). Exit code 1 unless every mutant was killed. The copy holds the working tree's tracked and untracked files (not ignored ones), so
uncommitted work is tested as it is.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import MUTANTS, Mutant  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 900
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


def copy_repository(target: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = REPO / relative
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():  # the repository links some folders (builder/defaults/): keep them links
            os.symlink(os.readlink(source), target / relative)
        elif source.is_file():
            shutil.copy2(source, target / relative)


def pytest(copy: Path, args: tuple[str, ...]) -> tuple[str, list[str], float]:
    """("passed" | "failed" | "timeout" | "error ...", failing test ids, seconds) of pytest ARGS in the copy."""
    started = time.monotonic()
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *args],
                             cwd=copy, env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True,
                             timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "timeout", [], time.monotonic() - started
    # pytest exits 1 when tests failed; 2-5 mean it could not run them (an error, nothing collected).
    outcome = {0: "passed", 1: "failed"}.get(run.returncode, f"error (pytest exit {run.returncode})")
    return outcome, _FAILED.findall(run.stdout), time.monotonic() - started


def apply(copy: Path, mutant: Mutant) -> str | None:
    """The original text of the mutated file, or None when the snippet does not occur exactly once."""
    path = copy / mutant.path
    original = path.read_text() if path.exists() else ""
    if original.count(mutant.old) != 1:
        return None
    path.write_text(original.replace(mutant.old, mutant.new))
    return original


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("words", nargs="*", help="run only mutants whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.words or any(word in m.name for word in args.words)]
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name:<46} {mutant.path:<28} {' '.join(mutant.tests)}")
        return 0

    results = []
    with tempfile.TemporaryDirectory(prefix="glan-mutation-") as tmp:
        copy = Path(tmp)
        copy_repository(copy)
        # The package is installed as `glan` from the folder builder/: in the copy, a link of that name on the
        # path makes `import glan` (tests, Ray workers, subprocesses) take the copy's builder/.
        (copy / "glan").symlink_to(copy / "builder", target_is_directory=True)
        where = subprocess.run([sys.executable, "-c", "import glan; print(glan.__file__)"], cwd=copy,
                               env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True)
        assert where.stdout.startswith(str(copy)), f"the copy's code is not the one imported: {where.stdout}"
        baseline = sorted({test for mutant in chosen for test in _files(mutant.tests)})
        outcome, failing, seconds = pytest(copy, tuple(baseline))
        print(f"baseline ({len(baseline)} test files, {seconds:.0f} s): {outcome} {' '.join(failing)}", flush=True)
        if outcome != "passed":
            print("the unmutated tests must pass first", file=sys.stderr)
            return 2
        for mutant in chosen:
            original = apply(copy, mutant)
            if original is None:
                results.append((mutant, "stale", [], 0.0))
            else:
                try:
                    outcome, failing, seconds = pytest(copy, mutant.tests)
                finally:
                    (copy / mutant.path).write_text(original)
                results.append((mutant, {"failed": "killed", "passed": "SURVIVED"}.get(outcome, outcome), failing,
                                seconds))
            mutant, status, failing, seconds = results[-1]
            print(f"{status:<9} {mutant.name:<46} {seconds:5.0f} s  {' '.join(failing)}", flush=True)

    others = [f"{mutant.name} ({status})" for mutant, status, _, _ in results if status != "killed"]
    print(f"\n{len(results) - len(others)} of {len(results)} mutants killed; not killed: {', '.join(others) or 'none'}")
    return 1 if others else 0


def _files(args: tuple[str, ...]) -> list[str]:
    """The test files among pytest arguments (the baseline runs them whole)."""
    return [arg for index, arg in enumerate(args) if arg.endswith(".py") and (index == 0 or args[index - 1] != "-k")]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
