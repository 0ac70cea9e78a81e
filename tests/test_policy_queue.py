"""The cycle at queue depth: the pending queue's order, the per-shape tail, and the
`WaitingList` that stands in for a tuple of `Waiting`."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from minga.scheduler.policy import Waiting, schedule
from minga.scheduler.policy.fairshare import order_pending
from minga.scheduler.policy.waiting_list import WaitingList
from tests.test_fairshare_helpers import NOW, inst, job, pool, site, snap


def crowded(n: int = 40):
    """Two GPUs and `n` two-GPU jobs: one is placed, one reserves, the rest form the tail
    (with a job no site could ever hold among them)."""
    jobs = [job(f"j{i:03d}", "uchile", gpus=2, submitted=float(i)) for i in range(n)]
    jobs.append(job("huge", "uchile", gpus=16, submitted=5.5))
    return snap([site("s1", "uchile", pool(total=2))], [inst("uchile")], pending=jobs)


def test_the_tail_waits_by_shape_in_queue_order():
    d = schedule(crowded(), NOW)
    assert [p.job_id for p in d.placements] == ["j000"]
    waiting = list(d.waiting)
    assert [w.job_id for w in waiting] == ["j001", "j002", "j003", "j004", "j005", "huge"] + [
        f"j{i:03d}" for i in range(6, 40)
    ]
    assert waiting[0].reason.startswith("reservation: holds 2 A100 GPUs on s1")
    assert {w.job_id for w in waiting if w.never_fits} == {"huge"}
    assert all(
        w.reason == "capacity: waiting for 2 free GPUs on one site (most free now: 0)"
        for w in waiting[1:]
        if w.job_id != "huge"
    )


def test_waiting_list_reads_like_the_tuple_it_stands_for():
    d = schedule(crowded(), NOW)
    waiting = d.waiting
    assert isinstance(waiting, WaitingList)
    as_tuple = tuple(waiting)
    assert len(waiting) == len(as_tuple) == 40
    assert waiting == as_tuple and as_tuple == waiting and waiting == list(as_tuple)
    assert hash(waiting) == hash(as_tuple)
    assert waiting[0] == as_tuple[0] and waiting[-1] == as_tuple[-1] and waiting[7] == as_tuple[7]
    assert waiting[3:9] == as_tuple[3:9]
    assert waiting != as_tuple[:-1] and waiting != ()
    with pytest.raises(IndexError):
        waiting[len(as_tuple)]
    assert all(isinstance(w, Waiting) for w in waiting)
    assert list(waiting.pairs()) == [(w.job_id, w.reason) for w in as_tuple]


def test_equal_submit_times_are_ordered_by_id_whatever_the_input_order():
    jobs = [job(jid, "uchile", submitted=t) for jid, t in [("b", 1.0), ("a", 1.0), ("c", 0.0), ("e", 2.0), ("d", 1.0)]]
    for seed in range(5):
        shuffled = list(jobs)
        random.Random(seed).shuffle(shuffled)
        s = snap([site("s1", "uchile")], [inst("uchile")], pending=shuffled)
        assert [j.id for j in order_pending(s, NOW)] == ["c", "a", "b", "d", "e"]


def test_equal_submit_times_within_a_project_go_by_id_with_or_without_age():
    jobs = [
        job("x2", "uchile", submitted=1.0),
        job("x1", "uchile", submitted=1.0),
        job("y1", "uchile", project="nlp", submitted=0.0),
    ]
    s = snap([site("s1", "uchile")], [inst("uchile")], pending=jobs)
    for snapshot in (s, replace(s, settings=replace(s.settings, age_weight=1.0))):
        order = [j.id for j in order_pending(snapshot, NOW)]
        assert order.index("x1") < order.index("x2")


def test_cpu_only_jobs_in_the_tail_still_look_for_cpus_in_queue_order():
    s = crowded(10)
    cpu_jobs = [job(f"cpu{i}", "uchile", gpus=0, cpus=30.0, submitted=20.0 + i) for i in range(3)]
    d = schedule(replace(s, pending=s.pending + tuple(cpu_jobs)), NOW)
    assert [p.job_id for p in d.placements] == ["j000", "cpu0", "cpu1"]  # 64 CPUs: 1 + 30 + 30 taken
    assert d.waiting[-1] == Waiting("cpu2", "capacity: waiting for 30 free CPUs")
    assert [w.job_id for w in d.waiting][-3:] == ["j008", "j009", "cpu2"]
