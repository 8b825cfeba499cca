"""`glan serve-local [--port N]`: the embedded llama.cpp server alone, in the foreground, for other tools."""

from __future__ import annotations

import sys

from .args import port
from .run import local_model_flag


def add_parser(commands) -> None:
    parser = commands.add_parser("serve-local", help="run the embedded llama.cpp server alone, for other tools")
    parser.add_argument("--port", type=port, help="port on 127.0.0.1 (default: a free one, printed at start)")
    parser.add_argument("--local-model", **local_model_flag())
    parser.set_defaults(run=run)


def run(args) -> int:
    """Serve until Ctrl-C (exit 0), or exit 1 when the server does not start or dies."""
    from ..llm.local import LocalServer

    try:
        with LocalServer(args.local_model, port=args.port) as server:
            print(f"Serving {server.model} at {server.base_url}. Point glan (or any OpenAI client) at it:")
            print(f"  export OPENAI_BASE_URL={server.base_url}")
            print("  export OPENAI_API_KEY=local   # any non-empty value; the server does not check it")
            print(f"  model name: {server.model}")
            print("Press Ctrl-C to stop.", flush=True)
            returncode = server.wait()
            print(
                f"glan: the embedded server exited with code {returncode}. Its last output:\n{server.output_tail()}",
                file=sys.stderr,
            )
            return 1
    except KeyboardInterrupt:
        return 0
