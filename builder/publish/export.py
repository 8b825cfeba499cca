"""The Hub's no-script layout, written locally: <config>/<split>-0000i-of-0000N.parquet, the card,
the manifest (glan_manifest.json) and the quality stats (stats.json).

The folder appears whole or not at all: it is written beside its final place and swapped in by
rename, so a crash leaves the previous folder (or none), never half of one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import datasets
from huggingface_hub.utils.sha import sha_fileobj

MAX_SHARD_BYTES = 500 * 2**20  # the Hub's recommended parquet shard size
MANIFEST = "glan_manifest.json"


def write_folder(out: Path, splits_by_config: dict[str, dict[str, datasets.Dataset]], manifest: dict,
                 render_card) -> None:
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    manifest["configs"], manifest["checksums"] = {}, {}
    for config, splits in splits_by_config.items():
        manifest["configs"][config] = {"splits": {}}
        for split, dataset in splits.items():
            files = write_shards(dataset, staging, config, split)
            manifest["checksums"].update({file: _sha256(staging / file) for file in files})
            manifest["configs"][config]["splits"][split] = {
                "num_rows": dataset.num_rows,
                "num_bytes": sum((staging / file).stat().st_size for file in files),
                "files": files,
            }
    (staging / "stats.json").write_text(json.dumps(manifest["stats"], indent=2, ensure_ascii=False) + "\n")
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    (staging / "README.md").write_text(render_card(manifest, None, staging))
    replace_folder(staging, out)


def write_shards(dataset: datasets.Dataset, root: Path, config: str, split: str) -> list[str]:
    count = max(1, math.ceil(dataset.data.nbytes / MAX_SHARD_BYTES))
    (root / config).mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        name = f"{config}/{split}-{index:05d}-of-{count:05d}.parquet"
        dataset.shard(num_shards=count, index=index, contiguous=True).to_parquet(root / name)
        files.append(name)
    return files


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return sha_fileobj(file).hex()


def replace_folder(staging: Path, out: Path) -> None:
    previous = out.with_name(f".{out.name}.previous-{os.getpid()}")
    if out.exists():
        out.rename(previous)
    staging.rename(out)
    shutil.rmtree(previous, ignore_errors=True)
