"""`glan batches`: the Batch API batches saved in a work dir, with their live status and counts;
`glan batches cancel [BATCH_ID ...]` cancels the running ones (a later build collects what finished
and sends the rest by the stage's batch_fallback)."""

from __future__ import annotations

import sys
import time


def add_parser(commands) -> None:
    parser = commands.add_parser("batches", help="list the Batch API batches of a work dir, or cancel them")
    parser.add_argument("action", nargs="?", choices=("list", "cancel"), default="list")
    parser.add_argument("batch_ids", nargs="*", help="cancel only these (default: every running batch)")
    parser.add_argument("--work-dir", default=".glan")
    parser.set_defaults(run=run)


def run(args) -> int:
    import openai

    from ..llm.batch import TERMINAL, BatchError, BatchStore, client, counts, find_by_chunk
    from ..llm.cache import Cache, shared_cache_path

    work_dir, action, batch_ids = args.work_dir, args.action, args.batch_ids
    path = shared_cache_path(work_dir)
    if not path.exists():
        print(
            f"glan: {path}: no such file. Pass the --work-dir of the build that submitted the batches.", file=sys.stderr
        )
        return 2
    store = BatchStore(Cache(path))
    saved = [batch for batch in store.all() if batch.input_file_id]
    for batch in saved:
        if batch.batch_id is None and not batch.collected:  # created just before a kill, before its id was saved?
            try:
                found = find_by_chunk(client(batch.base_url, batch.api_key_env), batch)
            except BatchError as error:
                print(f"glan: {error}", file=sys.stderr)
                continue
            if found:
                batch.batch_id, batch.status = found.id, found.status
                store.update(batch)
    unknown = sorted(set(batch_ids) - {batch.batch_id for batch in saved})
    if unknown:
        print(
            f"glan: {', '.join(unknown)}: not a batch saved in {work_dir}; `glan batches` lists them.", file=sys.stderr
        )
        return 2
    for batch in saved:
        if batch.batch_id is None or batch.status in TERMINAL:  # never created, or ended
            continue
        try:
            api = client(batch.base_url, batch.api_key_env)
            wanted = action == "cancel" and (not batch_ids or batch.batch_id in batch_ids)
            remote = api.batches.cancel(batch.batch_id) if wanted else api.batches.retrieve(batch.batch_id)
        except openai.APIError as error:  # still list what was saved
            print(f"glan: {batch.base_url}: {batch.batch_id}: {error}", file=sys.stderr)
            continue
        batch.status, batch.counts = remote.status, counts(remote)
        store.update(batch)
    print(_table(saved))
    return 0


def _table(saved) -> str:
    """One line per uploaded batch input; a batch the API never created shows `-` and status `preparing`
    (the next build creates it)."""
    if not saved:
        return "no batches saved in this work dir"
    width = max(len("batch"), *(len(batch.batch_id or "-") for batch in saved))
    lines = [
        f"{'batch':<{width}} {'stage':<10} {'status':<11} {'requests':>8} {'completed':>9} {'failed':>6} "
        f"{'collected':<9} created"
    ]
    for batch in saved:
        counts = batch.counts or {}
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(batch.created))
        lines.append(
            f"{batch.batch_id or '-':<{width}} {batch.stage:<10} {batch.status:<11} {len(batch.keys):>8,} "
            f"{counts.get('completed', 0):>9,} {counts.get('failed', 0):>6,} "
            f"{'yes' if batch.collected else 'no':<9} {created}"
        )
    return "\n".join(lines)
