"""What a work dir's response caches hold, read with sqlite3 as a person inspecting them would: the shared
cache.sqlite and each discipline's cache/<discipline_id>.sqlite."""

import sqlite3
from pathlib import Path


def cache_files(work_dir: Path) -> list[Path]:
    work_dir = Path(work_dir)
    return [path for path in [work_dir / "cache.sqlite", *sorted((work_dir / "cache").glob("*.sqlite"))]
            if path.exists()]


def responses(work_dir: Path, columns: str = "key, stage, text, created") -> list[tuple]:
    rows = []
    for path in cache_files(work_dir):
        with sqlite3.connect(path) as db:
            rows += db.execute(f"SELECT {columns} FROM responses").fetchall()
    return rows
