"""`glan push REPO`: publish the dataset folder to the Hub as one commit and a tag."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(commands) -> None:
    parser = commands.add_parser("push", help="publish the dataset folder to the Hub as one commit and a tag")
    parser.add_argument("repo_id")
    parser.add_argument("--from", dest="from_dir", default="dist", type=Path)
    parser.add_argument("--revision", default="main")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--create-pr", action="store_true")
    parser.add_argument("--message")
    parser.set_defaults(run=run)


def run(args) -> int:
    """0 published (or already published), 1 failed on the way, 2 refused."""
    from huggingface_hub.errors import HfHubHTTPError

    from ..publish.hub import PushError, push

    try:
        result = push(args.from_dir, args.repo_id, revision=args.revision, private=args.private,
                      create_pr=args.create_pr, message=args.message)
    except PushError as error:
        print(f"glan push: {error}", file=sys.stderr)
        return 2
    except (HfHubHTTPError, OSError, RuntimeError, ValueError) as error:
        response = error.response if isinstance(error, HfHubHTTPError) else None
        if response is not None and response.status_code == 401:
            what_to_do = "Set HF_TOKEN to a token with write access, or run `hf auth login`."
        else:
            what_to_do = "Run the same command to retry: uploaded shards are not sent again, a missing tag is created."
        # huggingface_hub wraps a failed LFS upload in a RuntimeError that names the file; the cause says why
        cause = f"\n{error.__cause__}" if isinstance(error, RuntimeError) and error.__cause__ else ""
        print(f"glan push: failed: {error}{cause}\n{what_to_do}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0
