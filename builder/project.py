"""A glan project: a taxonomy.yaml with its prompts/ beside it (and the card template it may name).

glan ships one (builder/defaults/, links to the repository's own taxonomy.yaml and prompts/ that the
wheel holds as copies): `glan init` writes it out to edit, and a taxonomy with no prompts/ beside it
uses the shipped prompts. Every release carries the project that made it under `glan/` (INPUTS_DIR),
so `glan pull` gives anyone the files to rebuild or extend it.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from .errors import UserError

SHIPPED = Path(__file__).parent / "defaults"
SHIPPED_TAXONOMY = SHIPPED / "taxonomy.yaml"
SHIPPED_PROMPTS = SHIPPED / "prompts"
TAXONOMY = "taxonomy.yaml"
PROMPTS = "prompts"
INPUTS_DIR = "glan"  # where a release holds the taxonomy, prompts and card template that made it


class ProjectError(UserError):
    """A project directory that cannot be written; str(e) says which file and what to do."""


def prompts_dir(taxonomy: str | Path, prompts: str | Path | None = None) -> Path:
    """`prompts` if given, else the prompts/ beside the taxonomy, else the prompts shipped with glan."""
    if prompts is not None:
        return Path(prompts)
    beside = Path(taxonomy).parent / PROMPTS
    return beside if beside.is_dir() else SHIPPED_PROMPTS


def init_project(directory: str | Path) -> list[Path]:
    """Write the shipped taxonomy.yaml and prompts/ into `directory`; never overwrites a file."""
    directory = Path(directory)
    files = {directory / TAXONOMY: SHIPPED_TAXONOMY}
    files.update({directory / PROMPTS / path.name: path for path in sorted(SHIPPED_PROMPTS.glob("*.yaml"))})
    write_project(files)
    return list(files)


def write_project(files: dict[Path, Path | bytes]) -> None:
    """Write `files` (target: source file or bytes), refusing before writing anything if one exists."""
    if existing := [path for path in files if path.exists()]:
        raise ProjectError(f"{existing[0]}: already exists. Pick an empty directory, or move the file away; "
                           "glan never overwrites a project file.")
    for target, source in files.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)


def release_inputs(taxonomy: str | Path, prompts: Path, card_template: str | None) -> dict[str, Path]:
    """The files a release publishes under glan/, by their path in the release."""
    taxonomy = Path(taxonomy)
    inputs = {f"{INPUTS_DIR}/{TAXONOMY}": taxonomy}
    inputs.update({f"{INPUTS_DIR}/{PROMPTS}/{path.name}": path for path in sorted(prompts.glob("*.yaml"))})
    if card_template:
        inputs[f"{INPUTS_DIR}/{card_template}"] = taxonomy.parent / card_template
    return inputs


def reproduction(run, configs: list[str], seed: int) -> dict:
    """What the card's "how to reproduce" section says: glan's version, the build command, seed and preset.

    The command names what decides the rows (preset, disciplines, configs, model, seed), not where it
    ran (endpoint, work dir, output folder), so the card is the same wherever the release is rebuilt.
    """
    from . import __version__
    from .stages import CONFIGS

    flags = []
    if run.preset:
        flags += ["--preset", run.preset]
    if run.disciplines:
        flags += ["--disciplines", ",".join(run.disciplines)]
    if set(configs) != set(CONFIGS):
        flags += ["--configs", ",".join(config for config in CONFIGS if config in configs)]
    if run.model:
        flags += ["--model", run.model]
    if run.seed is not None:
        flags += ["--seed", str(run.seed)]
    return {"glan_version": __version__, "command": shlex.join(["glan", "build", *flags]), "seed": seed,
            "preset": run.preset}
