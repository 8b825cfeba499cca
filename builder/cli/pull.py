"""`glan pull REPO [--revision vX] [DIR]`: the taxonomy.yaml, prompts/ and card template a release was made from."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UserError
from .output import add_token_flag, hub_progress_bars, refused_the_token


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "pull",
        help="fetch the taxonomy and prompts a release was made from, to rebuild or extend it",
        description="Write the project a release was made from (its glan/ folder: "
        "taxonomy.yaml, prompts/*.yaml, the card template the taxonomy names) "
        "into DIR. A release whose glan/ holds any other file, a path that is "
        "not plain and relative, or a file over 4 MiB is refused and nothing is "
        "written; existing files are never overwritten, and nothing is written "
        "through a symbolic link. HF_TOKEN is read for private repos.",
        intermixed=True,
    )
    parser.add_argument("repo_id", metavar="REPO", help="dataset repo on the Hub, e.g. you/glan-data")
    parser.add_argument(
        "directory", nargs="?", type=Path, metavar="DIR", help="where to write the project (default: the repo's name)"
    )
    add_token_flag(parser)
    parser.add_argument("--revision", default="main", help="release tag (e.g. v1.0.0), branch or commit")
    parser.set_defaults(run=run)


def run(args) -> int:
    """0 pulled, 1 failed on the way (the Hub stalled or failed), 2 refused (no such repo, revision or project; a file
    glan does not write; a file would be overwritten)."""
    import httpx2  # huggingface_hub's HTTP client: its HTTPError covers HfHubHTTPError and unreachable hosts
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    from ..publish.pull import pull

    hub_progress_bars()
    directory = args.directory or Path(args.repo_id.rsplit("/", 1)[-1])
    try:
        result = pull(args.repo_id, args.revision, directory, args.token)
    except RepositoryNotFoundError:
        raise UserError(
            f"{args.repo_id}: no such dataset repo, or it is private: set HF_TOKEN (or pass --token) to a token "
            "that can read it."
        ) from None
    except RevisionNotFoundError:
        raise UserError(
            f"{args.repo_id} has no revision {args.revision!r}. Name a release tag (v<version>), a branch or a commit."
        ) from None
    except (httpx2.HTTPError, OSError) as error:
        if isinstance(error, HfHubHTTPError) and refused_the_token(error):
            raise UserError(
                f"{args.repo_id}: the Hub refused the token (401 Unauthorized). Pass a valid --token, set HF_TOKEN, "
                "or run `hf auth login`."
            ) from None
        print(f"glan pull: failed: {error}\nRun the same command to retry.", file=sys.stderr)
        return 1
    print(result.summary())
    return 0
