"""The pending queue's columns kept up to date job by job (`QueueColumns`, as the leader's
in-memory state keeps them) against the same columns read afresh (`read_pending`)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minga.common.domain import Job, JobSpec, JobState, Resources
from minga.common.snapshot import Snapshot
from minga.scheduler.policy.pending_columns import Pending, QueueColumns, pending_columns, read_pending


def same_columns(a: Pending, b: Pending) -> bool:
    """Equal columns, shapes in the same id order, groups in the same order."""
    return (
        a.jobs == b.jobs
        and a.times == b.times
        and a.shape_of == b.shape_of
        and a.shapes == b.shapes
        and a.examples == b.examples
        and list(a.groups.items()) == list(b.groups.items())
    )


def job(n: int, t: int, gpus: int, model: str, project: str, priority: int, inst: str) -> Job:
    spec = JobSpec(
        entrypoint="true",
        resources=Resources(gpus=gpus, gpu_models=(model,) if model else ()),
        project=project,
        priority=priority,
    )
    return Job(id=f"j-{n:04d}", spec=spec, state=JobState.PENDING, owner="ana", institution=inst, submitted_at=float(t))


jobs = st.builds(
    job,
    n=st.integers(0, 9999),
    t=st.integers(0, 5),
    gpus=st.integers(0, 3),
    model=st.sampled_from(["", "A100", "T4"]),
    project=st.sampled_from(["a", "b"]),
    priority=st.integers(0, 1),
    inst=st.sampled_from(["uchile", "usp"]),
)
ops = st.lists(
    st.one_of(st.tuples(st.just("add"), jobs), st.tuples(st.just("drop"), st.integers(0, 10**6))), max_size=40
)


def order(j: Job) -> tuple[float, str]:
    return (j.submitted_at, j.id)


@settings(max_examples=300, deadline=None)
@given(initial=st.lists(jobs, max_size=10), ops=ops, mask_seed=st.integers(0, 2**16))
def test_kept_columns_equal_columns_read_afresh(initial, ops, mask_seed):
    queue = sorted({j.id: j for j in initial}.values(), key=order)
    columns = QueueColumns(queue, ordered=True)
    for kind, arg in ops:
        if kind == "add":
            if any(j.id == arg.id for j in queue):
                continue
            i = sum(1 for j in queue if order(j) <= order(arg))
            queue.insert(i, arg)
            columns.insert(i, arg)
        elif queue:
            i = arg % len(queue)
            del queue[i]
            columns.delete(i)
        pending = tuple(queue)
        assert same_columns(columns.read(pending), read_pending(pending))
    keep = [bool((mask_seed >> (k % 16)) & 1) for k in range(len(queue))]
    kept = tuple(j for j, k in zip(queue, keep, strict=True) if k)
    assert same_columns(columns.read(kept, np.array(keep, dtype=bool)), read_pending(kept))


def test_a_snapshot_uses_its_columns_only_when_they_are_for_its_own_jobs():
    queue = [job(i, i, 1 + i % 2, "", "a", 0, "uchile") for i in range(5)]
    pending = tuple(queue)
    kept = QueueColumns(pending, ordered=True).read(pending)
    snapshot = Snapshot(sites=(), live_runs=(), pending=pending, columns=kept)
    assert pending_columns(snapshot) is kept
    fewer = Snapshot(sites=(), live_runs=(), pending=pending[1:], columns=kept)  # e.g. after array caps
    assert same_columns(pending_columns(fewer), read_pending(pending[1:]))
