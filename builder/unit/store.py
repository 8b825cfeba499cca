"""A unit's files: where the units of a run live in the work dir, which are complete, and writing one.

A unit is keyed by a fingerprint of everything that decides its rows: the discipline's own taxonomy entry,
the resolved generation settings, each stage's model, sampling params, prompt and output schema, the
benchmarks it is decontaminated against, and glan's row format. Its files live in
`<work dir>/units/<discipline_id>/<fingerprint>/`: one parquet file per config and split, `unit.json`
(rows, Arrow bytes, sha256 and stats per file; what the quality steps dropped and the benchmark hits per side;
requests and failures per stage), `failures.jsonl`, and the near-duplicate figures of its instructions' questions
(`near_twins.parquet`: the held-out split is checked across disciplines from them, builder/quality/held_out.py). A build
that finds a complete unit for a fingerprint does not touch that discipline: no cache replay, no parsing,
no dedup. A unit that was interrupted resumes per request from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..llm.attempts import schema_of
from ..plan import Run
from ..quality import BenchmarkIndex, ConfigStats, QualityReport, Reread, near_twin_figures, write_near_twin_figures
from ..stages import DEFAULT_CONFIG, FEATURES, STAGE_NAMES, STAGES, TEXTS
from ..taxonomy import DisciplineRef
from .spill import SPILL_SUFFIX, Spill, deep_size

# Bump when a row's columns or how they are derived change, or what unit.json records: every unit is then
# rebuilt (from the cache). 2: files record their Arrow bytes. 3: a text field holding a control character fails
# its attempt (builder/llm/free_text.py), so a row of an older unit may no longer stand. 4: answers are decontaminated
# too, unit.json counts benchmark hits per side, and a unit keeps its questions' near-duplicate figures
# (NEAR_TWINS_FILE) for the held-out split's check across disciplines. 5: the instructions have the judge's columns
# (score, score_reason, judge_model), and stats the repetition figures.
ROW_FORMAT = 5
UNITS = "units"
UNIT_FILE = "unit.json"
FAILURES_FILE = "failures.jsonl"
# The near-duplicate figures of the unit's instructions' questions, per split (builder/quality/held_out.py).
NEAR_TWINS_FILE = "near_twins.parquet"
TOKEN_KINDS = ("prompt", "cached", "completion")  # input tokens, of them served from a prompt cache, output tokens
# Settings that decide how requests travel, not what they return: left out of the fingerprint.
_ROUTING_KEYS = {
    "model",
    "base_urls",
    "api_key_env",
    "structured_output",
    "batch",
    "batch_fallback",
    "temperature",
    "top_p",
    "max_tokens",
}  # the last four enter through each stage's resolved params


@dataclass
class UnitFiles:
    """What a written unit holds (its unit.json): files per config and split, and the figures to merge."""

    discipline_id: str
    fingerprint: str
    complete: bool  # every request answered or failed for good; otherwise the next build runs it again
    depth: int  # stages of the registry run through: 5 (the judge's, run or not) for a full unit
    files: dict[str, dict[str, dict]]  # config -> split -> {"file", "rows", "arrow_bytes", "sha256"}
    stats: dict[str, dict]  # "config" or "config/split" -> ConfigStats raw
    quality: dict  # QualityReport.to_dict()
    requests: dict[str, dict[str, int]]  # stage -> {"succeeded", "failed"} (per request, samples included)
    directory: Path = field(compare=False)  # where its files are
    # stage -> TOKEN_KINDS: what the responses its rows came from took (None: written by glan 0.2, which kept none)
    tokens: dict[str, dict[str, int]] | None = None

    def path(self, config: str, split: str) -> Path:
        return self.directory / self.files[config][split]["file"]

    @property
    def near_twins(self) -> Path | None:
        """Its questions' near-duplicate figures, when it made instructions."""
        path = self.directory / NEAR_TWINS_FILE
        return path if path.is_file() else None

    def to_json(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "directory"}


def request_outcomes(units: list[UnitFiles]) -> dict[str, dict[str, int]]:
    """Per stage, the requests of `units` that succeeded and failed (samples included): the one sum of them."""
    outcomes: dict[str, dict[str, int]] = {stage: {"succeeded": 0, "failed": 0} for stage in STAGE_NAMES}
    for unit in units:
        for stage, counts in unit.requests.items():
            for outcome in ("succeeded", "failed"):
                outcomes[stage][outcome] += counts[outcome]
    return outcomes


class UnitStore:
    """The units of one run in its work dir: where they live, which are complete, and writing one atomically.
    `benchmarks` are the run's, read once in preflight, for every unit's decontamination and fingerprint."""

    def __init__(self, run: Run, benchmarks: list[BenchmarkIndex]):
        self.run = run
        self.benchmarks = benchmarks
        self.root = run.work_dir / UNITS
        self.run_fingerprint = _run_fingerprint(run, self.benchmarks)

    def fingerprint(self, discipline: DisciplineRef) -> str:
        entry = json.dumps([self.run_fingerprint, vars(discipline)], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(entry.encode()).hexdigest()[:16]

    def find(self, discipline: DisciplineRef, depth: int, complete: bool = True) -> UnitFiles | None:
        """The unit of this discipline and fingerprint that ran at least `depth` stages, if any (and if complete)."""
        directory = self.root / discipline.discipline_id / self.fingerprint(discipline)
        try:
            unit = UnitFiles(**json.loads((directory / UNIT_FILE).read_text()), directory=directory)
        except FileNotFoundError:
            return None
        return unit if (unit.complete or not complete) and unit.depth >= depth else None

    def clean(self) -> None:
        """Staging folders a killed build left behind (the caller holds the work dir's lock)."""
        for staging in self.root.glob(f"*/{_STAGING}*"):
            shutil.rmtree(staging, ignore_errors=True)

    def write(self, discipline: DisciplineRef, result: UnitResult) -> UnitFiles:
        """The unit's files from its spilled rows (result.folder, which becomes the unit's folder)."""
        fingerprint = self.fingerprint(discipline)
        home = self.root / discipline.discipline_id
        staging = result.folder
        assert staging is not None, "an estimate's unit (its rows in memory) is never written"
        files: dict[str, dict[str, dict]] = {}
        for config, splits in result.rows.items():
            for split, rows in splits.items():
                if not len(rows):  # datasets cannot read an empty file back; the unit records 0 rows
                    continue
                name = f"{config}-{split}.parquet"
                arrow_bytes = rows.write_parquet(staging / name)
                # Arrow bytes: what datasets reads the file into, and push_to_hub reports as a split's num_bytes
                files.setdefault(config, {})[split] = {
                    "file": name,
                    "rows": len(rows),
                    "arrow_bytes": arrow_bytes,
                    "sha256": _sha256(staging / name),
                }
        if DEFAULT_CONFIG in result.rows:
            dedup = self.run.generation.quality.dedup
            questions: dict[str, Reread[tuple[str, str]]] = {
                split: _Questions(rows) for split, rows in result.rows[DEFAULT_CONFIG].items()
            }
            figures = near_twin_figures(
                questions, threshold=dedup.threshold, num_perm=dedup.num_perm, shingle_words=dedup.shingle_words
            )
            write_near_twin_figures(figures, staging / NEAR_TWINS_FILE)
        with open(staging / FAILURES_FILE, "w") as out:
            out.writelines(json.dumps(failure, ensure_ascii=False) + "\n" for failure in result.failures)
        unit = UnitFiles(
            discipline.discipline_id,
            fingerprint,
            result.complete,
            result.depth,
            files,
            {name: stats.to_raw() for name, stats in result.stats().items()},
            result.quality.to_dict(),
            result.requests,
            staging,
            result.tokens,
        )
        (staging / UNIT_FILE).write_text(json.dumps(unit.to_json(), indent=1, ensure_ascii=False))
        for spill in staging.glob(f"*{SPILL_SUFFIX}"):
            spill.unlink()
        for old in home.iterdir():  # a discipline keeps one unit: the newest
            if old != staging:
                shutil.rmtree(old)
        unit.directory = staging.rename(home / fingerprint)
        return unit

    async def put(self, discipline: DisciplineRef, result: UnitResult) -> UnitFiles:
        """`write`, in a thread: parquet, checksums and stats take CPU the other units' requests need meanwhile."""
        return await asyncio.to_thread(self.write, discipline, result)


_STAGING = ".staging-"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def staging_folder(run: Run, discipline: DisciplineRef) -> Path:
    """A new folder for a unit's spilled rows, which UnitStore.write makes the unit's folder (or UnitStore.clean
    removes, after a killed build)."""
    home = run.work_dir / UNITS / discipline.discipline_id
    home.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=_STAGING, dir=home))


class _Questions:
    """The (question_id, question) of a split's instructions, read from its spilled rows as often as asked."""

    def __init__(self, rows: Spill):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((row["question_id"], TEXTS[DEFAULT_CONFIG](row)["question"]) for row in self.rows)


# datasets builds a Features' Arrow schema anew on every access (~1 ms): a unit writes a file per config.
_ARROW_SCHEMAS = {config: features.arrow_schema for config, features in FEATURES.items()}


def _run_fingerprint(run: Run, benchmarks: list[BenchmarkIndex]) -> str:
    # The repetition settings flag figures in the card, and decide no row.
    generation = run.generation.model_dump(
        exclude={"limits": True, "prices": True, "discipline_ids": True, "executor": True, "quality": {"repetition"}}
    )
    for stage in STAGES:
        if stage.name in run.stages:
            generation[stage.name] = {
                key: value for key, value in generation[stage.name].items() if key not in _ROUTING_KEYS
            }
        else:  # a stage the run does not run (the judge when off) decides nothing
            del generation[stage.name]
    stages = {
        name: {
            "model": plan.route.model,
            "params": plan.params,
            "prompt": plan.prompt.fingerprint,
            "schema": schema_of(plan.output_model),
        }
        for name, plan in run.stages.items()
    }
    decided_by = {
        "row_format": ROW_FORMAT,
        "generation": generation,
        "stages": stages,
        "benchmarks": [index.fingerprint for index in benchmarks],
    }
    return hashlib.sha256(json.dumps(decided_by, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class UnitResult:
    rows: dict[str, dict[str, Spill]] = field(default_factory=dict)  # config -> split -> rows (spilled)
    quality: QualityReport = field(default_factory=QualityReport)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> TOKEN_KINDS
    failures: list[dict] = field(default_factory=list)
    depth: int = 0
    complete: bool = True
    batched: bool = False  # waits for a Batch API answer: nothing is written, the unit runs again after it
    folder: Path | None = None  # where its rows are spilled (None: in memory, for an estimate)
    _spills: int = 0
    _chunk_bytes: int = 0  # the largest chunk of rows its spills took in memory

    def spill(self, config: str) -> Spill:
        """A new spill of `config`'s rows in the unit's folder."""
        self._spills += 1
        path = None if self.folder is None else self.folder / f"{self._spills}-{config}{SPILL_SUFFIX}"
        return Spill(_ARROW_SCHEMAS[config], path, on_chunk=self._held)

    def held_bytes(self) -> int:
        """About the most the unit held in memory at once, not counting its rows' figures for dedup (admission
        counts those per question): a chunk of rows being spilled and one being read, and its failures."""
        return 2 * self._chunk_bytes + deep_size(self.failures)

    def discard(self) -> None:
        """Removes its spilled rows (a unit that ends unwritten)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def stats(self) -> dict[str, ConfigStats]:
        return {
            (config if split == "train" else f"{config}/{split}"): ConfigStats.of(rows, *_texts_of(config))
            for config, splits in self.rows.items()
            for split, rows in splits.items()
        }

    def _held(self, chunk_bytes: int) -> None:
        self._chunk_bytes = max(self._chunk_bytes, chunk_bytes)


def _texts_of(config: str) -> tuple:
    """How a config's rows give their text columns to stats (the taxonomy's rows: as they are)."""
    return (TEXTS[config],) if config in TEXTS else ()
