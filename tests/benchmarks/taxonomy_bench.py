"""Loading a 47 MB taxonomy (330,000 disciplines), and refusing hostile YAML, in time and memory.

Run: .venv/bin/python -m tests.benchmarks.taxonomy_bench [--keep FILE]
  prints seconds and peak RSS for load_taxonomy on the generated file (target: under 30 s and 1.5 GB on
  2 shared cores), then the seconds to refuse an alias bomb and lists nested 100,000 deep (target: well
  under a second). `--keep FILE` writes the large taxonomy there, for `/usr/bin/time glan taxonomy validate FILE`.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

from glan.taxonomy import TaxonomyError, load_taxonomy

FIELDS, SUBFIELDS, DISCIPLINES = 50, 60, 110


def write_large(path: Path) -> None:
    with open(path, "w") as out:
        out.write("version: 1.0.0\nfields:\n")
        for f in range(FIELDS):
            out.write(f"  - name: Field {f}\n    subfields:\n")
            for s in range(SUBFIELDS):
                out.write(f"      - name: Subfield {f}-{s}\n        disciplines:\n")
                for d in range(DISCIPLINES):
                    out.write(f"          - name: Discipline {f}-{s}-{d}\n            description: The study of topic "
                              f"number {d} within subfield {s} of field {f}, with its methods.\n")


def seconds_to_refuse(path: Path, text: str) -> float:
    path.write_text(text)
    start = time.perf_counter()
    try:
        load_taxonomy(path)
    except TaxonomyError:
        return time.perf_counter() - start
    raise AssertionError(f"{path} was accepted")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, help="write the large taxonomy here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        large = args.keep or Path(tmp) / "large.yaml"
        write_large(large)
        start = time.perf_counter()
        taxonomy = load_taxonomy(large)
        elapsed = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"load_taxonomy {large.stat().st_size / 1e6:.1f} MB, {len(taxonomy.disciplines()):,} disciplines: "
              f"{elapsed:.1f} s, peak RSS {peak_mb:,.0f} MB")
        levels = "".join(f"{b}: &{b} [" + ", ".join([f"*{a}"] * 9) + "]\n" for a, b in zip("abcdefgh", "bcdefghi"))
        bomb = 'version: 1.0.0\na: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + levels
        print(f"alias bomb (9 levels) refused in {seconds_to_refuse(Path(tmp) / 'bomb.yaml', bomb):.3f} s")
        deep = "version: 1.0.0\nfields: " + "[" * 100_000 + "]" * 100_000 + "\n"
        print(f"lists nested 100,000 deep refused in {seconds_to_refuse(Path(tmp) / 'deep.yaml', deep):.3f} s")


if __name__ == "__main__":
    main()
