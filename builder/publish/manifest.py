"""The release manifest (glan_manifest.json): what a built folder holds and how it was made, typed once. The build
makes it from the run and its units (`Manifest.of`), export fills in the files and checksums and writes it
(`write_manifest`), and the card, push, pull, show and the next build read it back (`read_manifest`,
`parse_manifest`; pull reads a release's manifest as untrusted input: only what validates is used).

Its JSON is written in field order, so the same build writes the same bytes. Fields other than the version and the
configs have defaults: a manifest another glan wrote, or a release a person assembled, still reads.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..config.yamlfile import format_path
from ..errors import UserError
from ..llm.local_models import LOCAL_MODELS, LocalModel
from ..plan import Run
from ..stages import CONFIGS, STAGES
from ..taxonomy.model import Card, DisciplineRef
from ..unit.store import TOKEN_KINDS, UnitFiles, request_outcomes
from ..version import __version__

MANIFEST = "glan_manifest.json"


class ManifestError(UserError):
    """A manifest glan cannot read; the message names the file and the field."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Reproduction(_Entry):
    """What the card's "how to reproduce" section says: glan's version, the build command, seed and preset."""

    glan_version: str
    command: str
    seed: int
    preset: str | None = None


class DisciplineEntry(_Entry):
    field: str
    subfield: str
    discipline: str
    discipline_id: str
    rows: dict[str, int] = {}  # config -> rows of the discipline

    @classmethod
    def of(cls, ref: DisciplineRef, unit: UnitFiles) -> DisciplineEntry:
        return cls(
            field=ref.field,
            subfield=ref.subfield,
            discipline=ref.discipline,
            discipline_id=ref.discipline_id,
            rows={
                config: sum(split["rows"] for split in unit.files.get(config, {}).values())
                for config in dict.fromkeys(stage.config for stage in STAGES[: unit.depth])
            },
        )


class TokenEntry(_Entry):
    """The tokens a stage's responses took: input, of it served from the endpoint's prompt cache, output."""

    prompt: int
    cached: int
    completion: int


class StageEntry(_Entry):
    model: str
    params: dict[str, Any] = {}
    prompt_fingerprint: str = ""
    tokens: TokenEntry | None = None  # None: a unit of glan 0.2 kept no token figures (not written, then)

    @staticmethod
    def tokens_of(stage: str, units: list[UnitFiles]) -> TokenEntry | None:
        """The sum over `units`, when every unit kept its figures for the stage."""
        figures = [unit.tokens.get(stage) if unit.tokens is not None else None for unit in units]
        if not figures or any(figure is None for figure in figures):
            return None
        return TokenEntry(**{kind: sum(figure[kind] for figure in figures if figure) for kind in TOKEN_KINDS})


class JudgeEntry(_Entry):
    """What the judge stage cost the release: its requests (one per pair, from the units), the tokens its responses
    took (retries included, as the units recorded them), their cost at the run's prices, and the min_score that
    dropped pairs."""

    model: str
    requests: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    min_score: int | None = None


class SplitEntry(_Entry):
    num_rows: int
    num_bytes: int
    files: list[str]


class ConfigEntry(_Entry):
    splits: dict[str, SplitEntry]

    @property
    def rows(self) -> int:
        return sum(split.num_rows for split in self.splits.values())


class Manifest(_Entry):
    taxonomy_version: str
    license: str = "other"
    card: Card = Card()
    reproduce: Reproduction | None = None
    failures: dict[str, int] = {}  # stage -> items without a valid output
    disciplines: list[DisciplineEntry] = []
    stages: dict[str, StageEntry] = {}
    stats: dict[str, Any] | None = None  # stats.json (builder/quality/stats.py)
    judge: JudgeEntry | None = None  # None: the judge did not run
    configs: dict[str, ConfigEntry]
    checksums: dict[str, str] = {}  # path in the folder -> sha256

    @classmethod
    def of(
        cls,
        run: Run,
        units: list[UnitFiles],
        configs: list[str],
        stats: dict | None = None,
        judge: JudgeEntry | None = None,
    ) -> Manifest:
        """The manifest of a build of `run` writing `configs` from `units` (in taxonomy order), before export lists
        its files."""
        outcomes = request_outcomes(units)
        refs = {ref.discipline_id: ref for ref in run.disciplines}
        return cls(
            taxonomy_version=run.taxonomy.version,
            license=run.taxonomy.license,
            card=run.taxonomy.card,
            reproduce=reproduction(run, configs),
            failures={stage.name: outcomes[stage.name]["failed"] for stage in run.chain()},
            disciplines=[DisciplineEntry.of(refs[unit.discipline_id], unit) for unit in units],
            stages={
                name: StageEntry(
                    model=plan.route.model,
                    params=plan.params,
                    prompt_fingerprint=plan.prompt.fingerprint,
                    tokens=StageEntry.tokens_of(name, units),
                )
                for name, plan in run.stages.items()
            },
            stats=stats,
            judge=judge,
            configs={},
        )

    @property
    def embedded_model(self) -> LocalModel | None:
        """The embedded model that wrote the rows, when one did: its alias is the model its stages name."""
        models = {stage.model for stage in self.stages.values()}
        return next((model for model in LOCAL_MODELS.values() if model.alias in models), None)

    def to_json(self) -> str:
        # A stage without token figures writes none: a folder of glan 0.2's units keeps its bytes.
        unknown = {name: {"tokens"} for name, stage in self.stages.items() if stage.tokens is None}
        return (
            json.dumps(self.model_dump(mode="json", exclude={"stages": unknown}), indent=2, ensure_ascii=False) + "\n"
        )


def reproduction(run: Run, configs: list[str]) -> Reproduction:
    """The command names what decides the rows (preset, disciplines, configs, model, seed), not where it ran
    (endpoint, work dir, output folder), so the card is the same wherever the release is rebuilt."""
    asked = run.settings
    flags = []
    if asked.preset:
        flags += ["--preset", asked.preset]
    if any(selector.startswith("@") for selector in asked.disciplines):  # a file the rebuilder does not have
        flags += ["--disciplines", ",".join(ref.discipline_id for ref in run.disciplines)]
    elif asked.disciplines:
        parts = (part.strip() for selector in asked.disciplines for part in selector.split(","))
        flags += ["--disciplines", ",".join(part for part in parts if part)]
    if set(configs) != set(CONFIGS):
        flags += ["--configs", ",".join(config for config in CONFIGS if config in configs)]
    if asked.model:
        flags += ["--model", asked.model]
    if asked.seed is not None:
        flags += ["--seed", str(asked.seed)]
    return Reproduction(
        glan_version=__version__,
        command=shlex.join(["glan", "build", *flags]),
        seed=run.generation.seed,
        preset=asked.preset,
    )


def parse_manifest(data: bytes, source: str) -> Manifest:
    """The manifest in `data` (the bytes of `source`); ManifestError when it is not one."""
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{source}:{error.lineno}: invalid JSON ({error.msg}). Re-export the folder.") from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        problem = "missing" if first["type"] == "missing" else first["msg"]
        where = format_path(tuple(first["loc"]))
        raise ManifestError(f"{source}: {f'{where}: ' if where else ''}{problem}. Re-export the folder.") from None


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest, or None when it has none (not built yet)."""
    path = Path(folder) / MANIFEST
    return parse_manifest(path.read_bytes(), str(path)) if path.is_file() else None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    (Path(folder) / MANIFEST).write_text(manifest.to_json())
