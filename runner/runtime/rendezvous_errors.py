"""torch's rendezvous failures as one line that says what happened and what to do.

Pure text over the plan's rendezvous settings and the exception chain; no torch import, so the
lines are unit-tested without a rendezvous (runner.runtime.rendezvous turns torch's exceptions
into `RendezvousError`s with them).
"""

from __future__ import annotations

from collections.abc import Iterator

from runner.plan import SETTING_DEFAULTS, RdzvPlan


def where(rdzv: RdzvPlan) -> str:
    return f"{rdzv.backend} at {rdzv.endpoint}"


def timeout_line(rdzv: RdzvPlan, joined: int | None) -> str:
    need = f"{rdzv.min_nodes}" if rdzv.min_nodes == rdzv.max_nodes else f"at least {rdzv.min_nodes}"
    came = "fewer" if joined is None else f"{joined}"
    timeout = rdzv.settings.get("join_timeout", SETTING_DEFAULTS["join_timeout"])
    return (f"erun: error: rendezvous '{rdzv.id}' ({where(rdzv)}) timed out after {timeout} s: {came} of "
            f"{need} nodes joined (nnodes={nnodes_text(rdzv)}); start the other nodes with the same "
            f"rdzv.id and endpoint, or raise rdzv.settings.join_timeout")


def nnodes_text(rdzv: RdzvPlan) -> str:
    return str(rdzv.min_nodes) if rdzv.min_nodes == rdzv.max_nodes else f"{rdzv.min_nodes}:{rdzv.max_nodes}"


def failure_line(rdzv: RdzvPlan, error: BaseException) -> str:
    text = " ".join(str(e) for e in chain(error)).lower()
    if "address already in use" in text or "errno 98" in text or "eaddrinuse" in text:
        return (f"erun: error: cannot serve the {rdzv.backend} rendezvous on {rdzv.endpoint}: address "
                f"already in use (another job or process holds the port); choose another port in "
                f"rdzv.endpoint")
    if isinstance(error, TimeoutError) or "timed out" in text or "timeout" in text:
        why = "no answer in time"
    elif "refused" in text:
        why = "connection refused"
    else:
        why = first_line(error)
    return (f"erun: error: cannot reach the {rdzv.backend} rendezvous at {rdzv.endpoint} ({why}); "
            f"check rdzv.endpoint and that the {server_name(rdzv)} is up and reachable from this node")


def lost_line(rdzv: RdzvPlan, error: BaseException) -> str:
    gone = ("the node hosting its store (the first to start) ended or died" if rdzv.backend == "c10d"
            else f"the {server_name(rdzv)} went away")
    return (f"erun: error: lost the {rdzv.backend} rendezvous at {rdzv.endpoint} ({first_line(error)}): "
            f"{gone}; the job cannot re-form")


def no_answer_line(rdzv: RdzvPlan, seconds: float) -> str:
    return (f"erun: error: no answer from the {rdzv.backend} rendezvous at {rdzv.endpoint} within "
            f"{seconds:g} s: something listens there but does not answer as a {rdzv.backend} store "
            f"(address already in use by another program?); choose another port in rdzv.endpoint")


def server_name(rdzv: RdzvPlan) -> str:
    if rdzv.backend.startswith("etcd"):
        return "etcd server (with --enable-v2)"
    if rdzv.backend == "static":
        return "node with node_rank=0"
    return "first node (it hosts the store)"


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def first_line(error: BaseException) -> str:
    for e in reversed(list(chain(error))):
        text = str(e).strip().splitlines()
        if text:
            return f"{type(e).__name__}: {text[0][:200]}"
    return type(error).__name__

