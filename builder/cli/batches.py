"""`glan batches`: the Batch API batches saved in a work dir, with their live status and counts;
`glan batches cancel [BATCH_ID ...]` cancels the running ones (a later build collects what finished
and sends the rest by the stage's batch_fallback)."""

from __future__ import annotations

import time

from ..config.run import DEFAULT_WORK_DIR
from ..errors import UserError
from .output import log, print_json


def add_parser(commands) -> None:
    parser = commands.add_parser("batches", help="list the Batch API batches of a work dir, or cancel them")
    parser.add_argument("action", nargs="?", choices=("list", "cancel"), default="list")
    parser.add_argument("batch_ids", nargs="*", help="cancel only these (default: every running batch)")
    parser.add_argument("--work-dir", default=DEFAULT_WORK_DIR)
    parser.add_argument("--json", action="store_true", help="print the batches as one JSON list on stdout")
    parser.set_defaults(run=run)


def run(args) -> int:
    import openai

    from ..llm.batch import TERMINAL, BatchError, BatchStore, client, counts, find_by_chunk
    from ..llm.cache import Cache, shared_cache_path

    work_dir, action, batch_ids = args.work_dir, args.action, args.batch_ids
    path = shared_cache_path(work_dir)
    if not path.exists():
        raise UserError(f"{path}: no such file. Pass the --work-dir of the build that submitted the batches.")
    store = BatchStore(Cache(path))
    saved = [batch for batch in store.all() if batch.input_file_id]
    for batch in saved:
        if batch.batch_id is None and not batch.collected:  # created just before a kill, before its id was saved?
            try:
                found = find_by_chunk(client(batch.base_url, batch.api_key_env), batch)
            except BatchError as error:
                log.warning(f"glan: {error}")
                continue
            if found:
                batch.batch_id, batch.status = found.id, found.status
                store.update(batch)
    unknown = sorted(set(batch_ids) - {batch.batch_id for batch in saved})
    if unknown:
        raise UserError(f"{', '.join(unknown)}: not a batch saved in {work_dir}; `glan batches` lists them.")
    for batch in saved:
        if batch.batch_id is None or batch.status in TERMINAL:  # never created, or ended
            continue
        try:
            api = client(batch.base_url, batch.api_key_env)
            wanted = action == "cancel" and (not batch_ids or batch.batch_id in batch_ids)
            remote = api.batches.cancel(batch.batch_id) if wanted else api.batches.retrieve(batch.batch_id)
        except openai.APIError as error:  # still list what was saved
            log.warning(f"glan: {batch.base_url}: {batch.batch_id}: {error}")
            continue
        batch.status, batch.counts = remote.status, counts(remote)
        store.update(batch)
    if args.json:
        print_json(_rows(saved))
    else:
        print(_table(saved))
    return 0


def _rows(saved) -> list[dict]:
    """One per uploaded batch input; a batch the API never created has no id and status `preparing` (the next build
    creates it)."""
    return [
        {
            "batch": batch.batch_id,
            "stage": batch.stage,
            "status": batch.status,
            "requests": len(batch.keys),
            "completed": (batch.counts or {}).get("completed", 0),
            "failed": (batch.counts or {}).get("failed", 0),
            "collected": batch.collected,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(batch.created)),
        }
        for batch in saved
    ]


def _table(saved) -> str:
    if not saved:
        return "no batches saved in this work dir"
    rows = _rows(saved)
    width = max(len("batch"), *(len(row["batch"] or "-") for row in rows))
    lines = [
        f"{'batch':<{width}} {'stage':<10} {'status':<11} {'requests':>8} {'completed':>9} {'failed':>6} "
        f"{'collected':<9} created"
    ]
    for row in rows:
        lines.append(
            f"{row['batch'] or '-':<{width}} {row['stage']:<10} {row['status']:<11} {row['requests']:>8,} "
            f"{row['completed']:>9,} {row['failed']:>6,} {'yes' if row['collected'] else 'no':<9} "
            f"{row['created'][:16].replace('T', ' ')}"
        )
    return "\n".join(lines)
