"""`glan build --ray`: the discipline units run on a Ray cluster instead of in this process.

The driver (the `glan build` process) resolves the run, finds the missing units as a local build does, and
hands them, one call per discipline, to Ray workers: one per CPU of the cluster, each a process running several
units at once as a local build does (worker.py). Endpoint limits hold across the workers through leases
(leases.py). Every worker reads and writes the work dir, which must be one shared path;
the driver then assembles the folder from the unit files exactly as a local build does.

Ray is an optional extra (`pip install 'glan[ray]'`); nothing here imports it until a build asks for Ray.
"""

from __future__ import annotations

from ...errors import UserError
from ...plan import Run
from ...taxonomy import DisciplineRef
from ...unit.store import UnitStore
from ..base import Executed, Executor

INSTALL = "pip install 'glan[ray]'"


class ClusterError(UserError):
    """A Ray build that cannot run as asked; the message says what to do."""


def check_ray_run(run: Run) -> None:
    """What a Ray build refuses, before anything is sent."""
    if any(plan.batch for plan in run.stages.values()):
        raise ClusterError("--ray: the Batch API does a build's work on OpenAI's side, not on a cluster. "
                           "Drop --ray, or drop --batch (and `batch: true` in the taxonomy).")
    if run.budget.max_cost is not None or run.budget.max_requests is not None:
        raise ClusterError("--ray: --max-cost and --max-requests are counted by one process and cannot stop a "
                           "cluster's workers exactly. Run without --ray to use a budget.")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ClusterError(f"--ray: Ray is not installed. Install it with: {INSTALL}") from None


class RayExecutor(Executor):
    def __init__(self, run: Run, store: UnitStore, progress: bool):
        check_ray_run(run)
        super().__init__(run, store, progress)

    def execute(self, disciplines: list[DisciplineRef], depth: int) -> Executed:
        from .driver import run_units

        return run_units(self.run, self.store, disciplines, depth, progress=self.progress)
