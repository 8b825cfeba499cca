"""The Ray executor: it refuses what a cluster cannot do, before anything is sent, and hands the missing units to
the driver (driver.py)."""

from __future__ import annotations

from ...plan import Run
from ...taxonomy import DisciplineRef
from ...unit.store import UnitStore
from ..base import Executed, Executor
from . import INSTALL, ClusterError


class RayExecutor(Executor):
    def __init__(self, run: Run, store: UnitStore, progress: bool):
        check_ray_run(run)
        super().__init__(run, store, progress)

    def execute(self, disciplines: list[DisciplineRef], depth: int) -> Executed:
        from .driver import run_units

        return run_units(self.run, self.store, disciplines, depth, progress=self.progress)


def check_ray_run(run: Run) -> None:
    """What a Ray build refuses, before anything is sent."""
    if any(plan.batch for plan in run.stages.values()):
        raise ClusterError(
            "--ray: the Batch API does a build's work on OpenAI's side, not on a cluster. "
            "Drop --ray, or drop --batch (and `batch: true` in the taxonomy)."
        )
    if run.budget.max_cost is not None or run.budget.max_requests is not None:
        raise ClusterError(
            "--ray: --max-cost and --max-requests are counted by one process and cannot stop a "
            "cluster's workers exactly. Run without --ray to use a budget."
        )
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ClusterError(f"--ray: Ray is not installed. Install it with: {INSTALL}") from None
