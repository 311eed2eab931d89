"""Which `Membership` a plan gets: the one place that knows every rendezvous backend.

Above both the interface (runner.runtime.membership) and the backends, as torch's
rendezvous/registry.py: a single node gets `Standalone` (no torch at all); several nodes on c10d
get erun's own c10d handler (`runner.runtime.c10d`: torch's protocol, no torch import); static,
etcd-v2, etcd (and c10d with a file store, or ERUN_TORCH_RENDEZVOUS=1) get torch's handlers
through `runner.runtime.rendezvous`, imported here only then.
"""

from __future__ import annotations

from runner.plan import JobPlan
from runner.runtime.membership import Membership, Standalone


def membership_for(plan: JobPlan) -> Membership:
    """Standalone for one node; erun's c10d, or torch's rendezvous (imported only then)."""
    if plan.rdzv.single_node and plan.rdzv.backend == "standalone":
        return Standalone(plan)
    if plan.rdzv.backend == "c10d":
        from runner.runtime.c10d import C10dMembership, native_possible

        if native_possible(plan.rdzv.settings):
            return C10dMembership(plan)
    from runner.runtime.rendezvous import TorchMembership  # torch is imported on this path only

    return TorchMembership(plan)
