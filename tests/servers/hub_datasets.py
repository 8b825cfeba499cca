"""Dataset repos for the Hub test server (hub_server.py), laid out as the Hub holds datasets with no loading
script: one parquet file per config and split, `<config>/<split>-00000-of-00001.parquet`, and a README.md whose
YAML `configs:` block names them. A repo is published as one commit whose sha is given, so that a client pinning
a real revision (glan's shipped benchmarks) reads it with `datasets.load_dataset` unmodified.

    publish(hub, "openai/gsm8k", "cc7b...", parquet_repo({"main": {"train": table, "test": table}}))
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from tests.servers.hub_server import GITATTRIBUTES, Blob, Commit, HubServerHandle, Repo


def parquet_repo(configs: dict[str, dict[str, pa.Table]]) -> dict[str, bytes]:
    """The files of a dataset repo: config -> split -> its rows."""
    files, card = {}, []
    for config, splits in configs.items():
        card.append({"config_name": config,
                     "data_files": [{"split": split, "path": f"{config}/{split}-*"} for split in splits]})
        for split, table in splits.items():
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            files[f"{config}/{split}-00000-of-00001.parquet"] = buffer.getvalue()
    files["README.md"] = ("---\n" + yaml.safe_dump({"configs": card}, sort_keys=False) + "---\n").encode()
    return files


def publish(hub: HubServerHandle, repo_id: str, revision: str, files: dict[str, bytes]) -> None:
    """The public dataset repo `repo_id`, replaced by one commit `revision` holding `files`; main points at it."""
    date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    blobs = {".gitattributes": Blob(GITATTRIBUTES.encode(), False),
             **{path: Blob(content, path.endswith(".parquet")) for path, content in files.items()}}
    repo = Repo(repo_type="dataset", repo_id=repo_id, private=False, created=date)
    repo.commits[revision] = Commit(sha=revision, parent=None, title="Upload dataset", message="", date=date,
                                    files=blobs)
    repo.branches["main"] = revision
    with hub.state.lock:
        hub.state.repos[("dataset", repo_id)] = repo
