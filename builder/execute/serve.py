"""The embedded default's server, for the length of a run that the plan put on the embedded model."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from ..llm.local_models import demo_notice
from ..plan import Run

log = logging.getLogger("glan")


@contextlib.contextmanager
def serving(run: Run) -> Iterator[Run]:
    """`run` itself when it goes to endpoints; on the embedded model, the run going to the embedded llama.cpp
    server, started here and stopped when the block ends."""
    if run.embedded is None:
        yield run
        return
    from ..llm.local import LocalServer

    with LocalServer(run.embedded.name) as server:
        preset = run.settings.preset
        scope = f"the {preset} preset" if preset else "the taxonomy's generation settings"
        log.warning(
            f"glan: no endpoint configured: running {scope} on the embedded {server.local_model.label} "
            f"(llama.cpp at {server.base_url}).\n"
            f"glan: {demo_notice(server.local_model)}"
        )
        yield run.on_local_server(server.base_url)
