"""Which `Membership` a plan gets: the one place that knows every rendezvous backend.

Above both the interface (runner.runtime.membership) and the backends, as torch's
rendezvous/registry.py: a single node gets `Standalone` (no torch at all); several nodes get
torch's backends (c10d, static, etcd-v2, etcd) through `runner.runtime.rendezvous`, which is
imported here only then, so a single-node agent never imports torch.
"""

from __future__ import annotations

from runner.plan import JobPlan
from runner.runtime.membership import Membership, Standalone


def membership_for(plan: JobPlan) -> Membership:
    """Standalone for one node; torch's rendezvous (imported only then) for several."""
    if plan.rdzv.single_node and plan.rdzv.backend == "standalone":
        return Standalone(plan)
    from runner.runtime.rendezvous import TorchMembership  # torch is imported on this path only

    return TorchMembership(plan)
