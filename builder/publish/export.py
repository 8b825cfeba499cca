"""The Hub's no-script layout, assembled from unit files: <config>/<split>-<discipline_id>.parquet (a unit's
file, copied byte for byte, so a discipline that did not change keeps identical files across builds and
releases and a push uploads only what changed), taxonomy/train-00000-of-00001.parquet (one row per
discipline), the card, the manifest (glan_manifest.json), the quality stats (stats.json), the card's charts
(charts/*.png) and the inputs that made it (glan/: taxonomy.yaml, prompts/, the card template).

The folder appears whole or not at all: it is written beside its final place and swapped in by
rename, so a crash leaves the previous folder (or none), never half of one. It replaces only a folder glan
wrote (check_replaceable): none, an empty one, or one that holds a glan_manifest.json.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub.utils.sha import sha_fileobj

from ..errors import UserError
from ..stages import FEATURES, TAXONOMY
from ..unit.store import UnitFiles
from .charts import write_charts
from .manifest import MANIFEST, ConfigEntry, Manifest, SplitEntry, write_manifest

TAXONOMY_FILE = "taxonomy/train-00000-of-00001.parquet"


class NotOurFolder(UserError):
    """A folder a build would replace holds what glan did not write; the message says which and what to do."""


def check_replaceable(folder: Path) -> None:
    """glan replaces only what it wrote: `folder` may not exist, be empty, or hold a glan dataset (its manifest)."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise NotOurFolder(
            f"{folder}: a build would replace it, but it is a file, not a folder glan wrote. Pass "
            "another --out, or move the file away."
        )
    if not (folder / MANIFEST).is_file() and any(folder.iterdir()):
        raise NotOurFolder(
            f"{folder}: a build would replace this folder, but it holds files and no {MANIFEST}, so "
            "it is not a dataset glan wrote. Pass another --out (a new or empty folder), or move "
            "these files away."
        )


def incomplete_folder(out: Path) -> Path:
    """Where a build that stops early writes what was complete, leaving `out` as it was."""
    return out.with_name(out.name + ".incomplete")


def write_folder(
    out: Path, units: list[UnitFiles], configs: list[str], manifest: Manifest, render_card, inputs: dict[str, Path]
) -> None:
    """`units` are in taxonomy order; each config's files are listed in discipline id order, the order load_dataset
    reads a folder in, into the manifest's configs and checksums. `inputs` are copied to their paths in the folder
    (glan/...)."""
    out = Path(out)
    check_replaceable(out)  # again: files may have appeared there since the build's preflight
    _remove_leftovers(out)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        _write_staging(staging, units, configs, manifest, render_card, inputs)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_folder(staging, out)


def _write_staging(
    staging: Path, units: list[UnitFiles], configs: list[str], manifest: Manifest, render_card, inputs: dict[str, Path]
) -> None:
    written, checksums = {}, {}
    for config in configs:
        splits = _write_taxonomy(staging, units) if config == TAXONOMY else _copy_unit_files(staging, units, config)
        if splits:
            written[config] = ConfigEntry(
                splits={split: SplitEntry(**figures) for split, (figures, _) in splits.items()}
            )
            for _, sha256 in splits.values():
                checksums.update(sha256)
    for relative, source in inputs.items():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staging / relative)
        checksums[relative] = _sha256(staging / relative)
    for relative in write_charts(staging, manifest.disciplines, manifest.stats):
        checksums[relative] = _sha256(staging / relative)
    manifest = manifest.model_copy(update={"configs": written, "checksums": checksums})
    (staging / "stats.json").write_text(json.dumps(manifest.stats, indent=2, ensure_ascii=False) + "\n")
    write_manifest(staging, manifest)
    (staging / "README.md").write_text(render_card(manifest, staging))


def _copy_unit_files(staging: Path, units: list[UnitFiles], config: str) -> dict[str, tuple[dict, dict]]:
    """split -> (its manifest figures, sha256 of each file)."""
    splits: dict[str, tuple[dict, dict]] = {}
    for unit in sorted(units, key=lambda unit: unit.discipline_id):
        for split, figures in unit.files.get(config, {}).items():
            name = f"{config}/{split}-{unit.discipline_id}.parquet"
            (staging / config).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(unit.path(config, split), staging / name)
            entry, sha256 = splits.setdefault(split, ({"num_rows": 0, "num_bytes": 0, "files": []}, {}))
            entry["num_rows"] += figures["rows"]
            entry["num_bytes"] += figures["arrow_bytes"]
            entry["files"].append(name)
            sha256[name] = figures["sha256"]
    return splits


def _write_taxonomy(staging: Path, units: list[UnitFiles]) -> dict[str, tuple[dict, dict]]:
    """The taxonomy config in one file: a row per discipline is too small to be worth a file each."""
    table = (
        pa.concat_tables([pq.read_table(unit.path(TAXONOMY, "train")) for unit in units])
        .cast(FEATURES[TAXONOMY].arrow_schema)
        .combine_chunks()
    )  # one chunk: its Arrow bytes are what datasets reads
    (staging / "taxonomy").mkdir(parents=True)
    pq.write_table(table, staging / TAXONOMY_FILE)
    return {
        "train": (
            {"num_rows": table.num_rows, "num_bytes": table.nbytes, "files": [TAXONOMY_FILE]},
            {TAXONOMY_FILE: _sha256(staging / TAXONOMY_FILE)},
        )
    }


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return sha_fileobj(file).hex()


def _remove_leftovers(out: Path) -> None:
    """Staging and swapped-out folders of builds that were killed or ran out of disk before cleaning up."""
    for leftover in out.parent.glob(f".{out.name}.*-*"):
        kind, _, pid = leftover.name.removeprefix(f".{out.name}.").rpartition("-")
        if kind in ("partial", "previous") and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether another live process could still be writing the folder (ours left it in an earlier life)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def replace_folder(staging: Path, out: Path) -> None:
    previous = out.with_name(f".{out.name}.previous-{os.getpid()}")
    if out.exists():
        out.rename(previous)
    staging.rename(out)
    shutil.rmtree(previous, ignore_errors=True)
