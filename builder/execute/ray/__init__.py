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

INSTALL = "pip install 'glan[ray]'"


class ClusterError(UserError):
    """A Ray build that cannot run as asked; the message says what to do."""
