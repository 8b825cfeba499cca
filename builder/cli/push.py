"""`glan push REPO`: publish the dataset folder to the Hub as one commit and a tag."""

from __future__ import annotations

import sys
from pathlib import Path

from .output import add_token_flag, hub_progress_bars, refused_the_token


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "push",
        help="publish the dataset folder to the Hub as one commit and a tag",
        description="Publish the dataset folder as release v<taxonomy version> of a dataset repo: one commit (shards, "
        "README.md as the folder holds it with the repo id filled in, glan_manifest.json, stats.json, and "
        "the taxonomy and prompts under glan/), then the tag. The token is read from HF_TOKEN (or "
        "`hf auth login`). The folder is held for the whole push: a build into it is refused meanwhile, "
        "and a file that changes underneath fails the push before any commit. A Hub that gives no "
        "answer for GLAN_HUB_STALL_S seconds (default 120) ends it. Exit 0 published or already "
        "published, 1 failed on the way (run it again: it resumes), 2 refused.",
    )
    parser.add_argument(
        "repo_id", metavar="REPO", help="dataset repo on the Hub, e.g. you/glan-data (created if missing)"
    )
    parser.add_argument("--from", dest="from_dir", default="dist", type=Path, help="the folder `glan build` wrote")
    parser.add_argument("--revision", default="main", help="the branch to commit to")
    parser.add_argument(
        "--private",
        action="store_true",
        help="create the repo private, or make an existing public repo private (default: a new "
        "repo gets the account's default visibility; an existing one keeps its own)",
    )
    parser.add_argument(
        "--create-pr",
        action="store_true",
        help="open a pull request instead of committing to the branch (reusing an open one that "
        "holds this release); tag after the merge with a plain `glan push`",
    )
    add_token_flag(parser)
    parser.add_argument("--message", help="commit title (default: Release v<taxonomy version>)")
    parser.set_defaults(run=run)


def run(args) -> int:
    """0 published (or already published), 1 failed on the way, 2 refused."""
    import httpx2  # huggingface_hub's HTTP client: its HTTPError covers HfHubHTTPError and unreachable hosts
    from huggingface_hub.errors import HfHubHTTPError

    from ..publish.hub import push
    from ..publish.session import HubUnreachable

    hub_progress_bars()

    try:
        result = push(
            args.from_dir,
            args.repo_id,
            revision=args.revision,
            private=args.private,
            create_pr=args.create_pr,
            message=args.message,
            token=args.token,
        )
    except (httpx2.HTTPError, OSError, RuntimeError, ValueError) as error:
        if isinstance(error.__cause__, HubUnreachable):  # huggingface_hub wraps what failed an LFS upload
            raise error.__cause__ from None
        if isinstance(error, HfHubHTTPError) and refused_the_token(error):
            what_to_do = "Set HF_TOKEN to a token with write access, or run `hf auth login`."
        else:
            what_to_do = "Run the same command to retry: uploaded shards are not sent again, a missing tag is created."
        # huggingface_hub wraps a failed LFS upload in a RuntimeError that names the file; the cause says why
        cause = f"\n{error.__cause__}" if isinstance(error, RuntimeError) and error.__cause__ else ""
        print(f"glan push: failed: {error}{cause}\n{what_to_do}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0
