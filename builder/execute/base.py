"""What every executor is and returns. An executor runs the units of the disciplines it is given (each through the
stages and quality steps, builder/unit/) and returns the units it wrote, with what their requests cost and how the
endpoints took them; the build merges that with the units that were complete already. datatrove's executors are
the model: siblings over one base, each returning its results to the caller, the pipeline never importing one."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..llm.accounting import Accounting
from ..llm.engine import Engine
from ..plan import Run
from ..taxonomy import DisciplineRef
from ..unit.store import UnitFiles, UnitStore


@dataclass
class EngineFigures:
    """How the endpoints took the units, for the build's summary and run report: from an engine, or on Ray merged
    from the workers' engines and the cluster-wide leases."""

    lowest_concurrency: dict[str, int]
    retry_after_waits: list[float]
    stop_reason: str | None
    workers: dict[str, int] = field(default_factory=dict)  # on Ray: units run per worker (node address:pid)

    @classmethod
    def of(cls, engine: Engine) -> EngineFigures:
        return cls(engine.lowest_concurrency, engine.retry_after_waits, engine.stop_reason)


@dataclass
class Executed:
    """What an executor returns: the units it wrote (in no particular order), the usage of their requests, and the
    endpoints' figures."""

    units: list[UnitFiles]
    accounting: Accounting
    figures: EngineFigures


class Executor:
    """Runs units of `run`, writing them into `store`; `progress` shows a bar (on a terminal) or status lines."""

    def __init__(self, run: Run, store: UnitStore, progress: bool):
        self.run, self.store, self.progress = run, store, progress

    def execute(self, disciplines: list[DisciplineRef], depth: int) -> Executed:
        """Run the units of `disciplines` through their first `depth` stages and write them."""
        raise NotImplementedError
