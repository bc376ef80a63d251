"""The parallel check runner's job order (proofs_check._schedule.Plan), without processes."""

import heapq

import pytest

from proofs_check import load_checks
from proofs_check._schedule import COMPILE_SECONDS, GROUPS, Plan, group_of, task_groups


def _simulate(plan, workers, seconds):
    """Run ``plan`` on ``workers`` simulated workers; ``seconds(job)`` is a job's length.

    Returns the jobs as (start, end, worker, job), in start order.
    """
    clock, free, busy, log = 0.0, list(range(workers)), [], []
    while plan.pending() or busy:
        while free:
            job = plan.next_job()
            if job is None:
                break
            w = free.pop(0)
            heapq.heappush(busy, (clock + seconds(job), len(log), w, job))
            log.append((clock, clock + seconds(job), w, job))
        assert busy, "the plan stalled with jobs pending and no job running"
        clock, _, w, job = heapq.heappop(busy)
        plan.done(job)
        free.append(w)
        if job.kind == "task" and job.seed == max(plan.seeds):
            for cid in job.ids:
                plan.add_figure(cid)
    return log


def _cost(job):
    if job.kind == "shared":
        return 1.0
    if job.kind == "warm":
        return sum(COMPILE_SECONDS[f] for f in job.families)
    if job.kind == "figure":
        return 0.4
    return group_of(job.ids[0]).seconds


IDS = list(load_checks())


def test_groups_cover_every_check_once_and_keep_order():
    groups = task_groups(IDS)
    flat = [c for _, cids in groups for c in cids]
    assert sorted(flat) == sorted(IDS)
    for _, cids in groups:
        assert cids == [c for c in IDS if c in cids]
    assert [g.seconds for g, _ in groups] == sorted((g.seconds for g, _ in groups), reverse=True)
    # The same-radius checks reuse the fp pipeline's network: same task as the fp checks.
    fp = dict((g.name, c) for g, c in groups)["fp"]
    assert {"lb.same_radius_linf", "lb.same_radius_poly_linf"} <= set(fp)


def test_group_of_exact_id_beats_prefix_and_users_get_their_own():
    assert group_of("ll.adversarial_robust").name == "ll.adversarial_robust"
    assert group_of("ll.adversarial_robust_warm_pgd").name == "ll"  # exact, not a prefix
    assert group_of("lb.linear_bound").name == "lb.linear_bound"
    assert group_of("lb.same_radius_poly_linf").name == "fp"
    mine = group_of("mylab.claim_1")
    assert mine.name == "mylab" and set(mine.families) == {"two_layer", "linear", "polynomial",
                                                           "ntk", "cnn"}
    assert all(g.families and g.seconds > 0 for g in GROUPS)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_every_job_once_no_task_before_its_families(workers):
    plan = Plan(IDS, [0, 1, 2])
    log = _simulate(plan, workers, _cost)
    jobs = [j for _, _, _, j in log]
    assert jobs[0].kind == "shared"
    shared_end = log[0][1]
    assert all(start >= shared_end for start, _, _, _ in log[1:])  # the shared kernels alone
    warmed = [f for j in jobs if j.kind == "warm" for f in j.families]
    assert sorted(warmed) == sorted({f for g, _ in task_groups(IDS) for f in g.families})
    ends = {f: end for _, end, _, j in log if j.kind == "warm" for f in j.families}
    tasks = [(start, j) for start, _, _, j in log if j.kind == "task"]
    assert sorted((j.group, j.seed) for _, j in tasks) == sorted(
        (g.name, s) for g, _ in task_groups(IDS) for s in (0, 1, 2))
    for start, j in tasks:
        assert all(start >= ends[f] for f in j.families), j
    assert sorted(j.check_id for j in jobs if j.kind == "figure") == sorted(IDS)


def test_first_result_early_and_the_rest_balanced():
    plan = Plan(IDS, [0, 1, 2])
    assert plan.first == "lb.linear_bound"  # linear compiles in ~1 s, ~1 s per seed
    log = _simulate(plan, 2, _cost)
    first = [end for _, end, _, j in log if j.kind == "task" and j.group == plan.first]
    assert max(first) < 8.0  # shared 1 + linear 1.1 + 3 seeds of 1 s on 2 workers, and slack
    # Before any task of another group starts, every family is being warmed or warm.
    other = min(s for s, _, _, j in log if j.kind == "task" and j.group != plan.first)
    warm_starts = [s for s, _, _, j in log if j.kind == "warm"]
    assert max(warm_starts) <= other + 1e-9
    total = sum(_cost(j) for _, _, _, j in log)
    makespan = max(e for _, e, _, _ in log)
    # LPT over two workers: within the longest task of the even split (Graham's bound).
    assert makespan <= total / 2 + max(g.seconds for g in GROUPS) / 2 + 1e-9


def test_a_broken_order_is_caught():
    # The same simulation must see a task that starts before its families are warm.
    plan = Plan(IDS, [0])
    plan._ready = lambda job: True  # noqa: SLF001 - the deliberate break
    log = _simulate(plan, 2, _cost)
    ends = {f: end for _, end, _, j in log if j.kind == "warm" for f in j.families}
    assert any(any(s < ends[f] for f in j.families)
               for s, _, _, j in log if j.kind == "task")


def test_without_a_shared_cache_nothing_is_warmed():
    plan = Plan(IDS, [0, 1])
    plan_nc = Plan(IDS, [0, 1], caching=False)
    jobs = [j for _, _, _, j in _simulate(plan_nc, 2, _cost)]
    assert {j.kind for j in jobs} == {"task", "figure"}
    tasks = [j for j in jobs if j.kind == "task"]
    assert tasks[0].group == plan_nc.first and tasks[1].group == plan_nc.first
    assert [j.group for j in tasks[2:4]] == ["fp", "fp"]  # then longest first
    assert plan.pending() > plan_nc.pending()


def test_figures_go_before_waiting_tasks():
    plan = Plan(["lb.linear_bound", "fp.v1_clean_features_l2"], [0], caching=False)
    first = plan.next_job()
    assert first.group == "lb.linear_bound"
    plan.done(first)
    plan.add_figure("lb.linear_bound")
    assert plan.next_job().kind == "figure"
    assert plan.next_job().group == "fp"
    assert plan.next_job() is None and plan.pending() == 0
