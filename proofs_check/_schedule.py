"""Which checks run together, which kernels each group needs, and the order jobs start in.

The parallel check runner has three kinds of job: warming a kernel family (compile
it, or load it from the Numba cache), running one task group on one seed, and
drawing a check's figure.  :class:`Plan` decides which job a free worker gets, so
that

* no two workers compile the same kernel at once (numba #10128: concurrent
  writers of one cache file can corrupt it): the kernels every family shares are
  compiled first, alone (:func:`theorylab.sweep.warm.warm_shared`), and each
  family is then warmed by exactly one job;
* a task starts only once its families are warm, so a worker never compiles a
  kernel a task calls: it loads it;
* the first result comes early: the cheapest group (families to compile plus its
  seeds) goes first, and its seeds run before the other families compile; then
  the other families, costliest compile first (they unblock the costliest
  tasks); then every task, longest-processing-time first (LPT), with figures as
  soon as a check's seeds are in.

Results do not depend on the order: each task is a function of its seed and
parameters only.  The costs below only order the jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Group", "GROUPS", "COMPILE_SECONDS", "group_of", "task_groups", "Plan"]

# Cold compile seconds per kernel family, serial twins (the workers' kernels), measured
# on the quiet 2-core machine (benchmarks/bench_compile.py --serial, 2026-12-02).
COMPILE_SECONDS = {"two_layer": 14.5, "cnn": 9.6, "polynomial": 2.1, "ntk": 2.0, "linear": 1.1}


@dataclass(frozen=True)
class Group:
    """Checks that run in one task per seed (they share their memoised stages).

    Attributes
    ----------
    name : str
    match : tuple of str
        Check ids (exact), prefixes ending in "." (``"img."``) or patterns
        ending in "*" (``"lb.same_radius*"``); see :func:`group_of`.
    families : tuple of str
        The kernel families its checks call (:data:`theorylab.sweep.warm.FAMILIES`),
        as audited by ``benchmarks/bench_compile.py --checks``: a run of the
        group after warming these compiles nothing.
    seconds : float
        CPU seconds of one seed, quick regime (one worker, one thread).
    """

    name: str
    match: tuple
    families: tuple
    seconds: float


# CPU seconds per seed from the quick regime's timings on the 2-core machine
# (reports/check_timings.json, 2026-12-02).  The same-radius checks reuse the fp
# pipeline's linf network (memoised per process), so they travel with the fp checks.
GROUPS = (
    Group("fp", ("fp.", "lb.same_radius*"),
          ("two_layer", "linear", "polynomial", "ntk"), 58.0),
    Group("ll.adversarial_robust", ("ll.adversarial_robust",), ("cnn",), 45.0),
    Group("img", ("img.",), ("two_layer", "cnn"), 17.5),
    Group("ll", ("ll.",), ("cnn",), 10.7),
    Group("lb.ntk_width", ("lb.ntk_width",), ("linear", "ntk"), 4.3),
    Group("lb.poly_tau50_scaling", ("lb.poly_tau50_scaling",), ("polynomial",), 1.2),
    Group("lb.linear_bound", ("lb.linear_bound",), ("linear",), 1.0),
)


def _user_group(check_id):
    # A user's check: grouped by its id's first part, every family (unknown needs).
    from theorylab.sweep.warm import FAMILIES

    return Group(check_id.split(".", 1)[0], (), tuple(FAMILIES), 10.0)


def _matches(check_id, pattern):
    if pattern.endswith("*"):
        return check_id.startswith(pattern[:-1])
    if pattern.endswith("."):
        return check_id.startswith(pattern)
    return check_id == pattern


def group_of(check_id):
    """The :class:`Group` a check id belongs to (a user's check: one group per prefix).

    An exact id wins over a prefix, a longer prefix over a shorter one.
    """
    best, score = None, -1
    for g in GROUPS:
        for pat in g.match:
            if _matches(check_id, pat):
                s = 10_000 if pat == check_id else len(pat)
                if s > score:
                    best, score = g, s
    return best if best is not None else _user_group(check_id)


def task_groups(ids):
    """The check ids split into task groups, ``[(Group, [ids in the given order])]``.

    Costliest group first (the LPT order); a group's ids keep the order of ``ids``.
    """
    groups, order = {}, []
    for cid in ids:
        g = group_of(cid)
        if g.name not in groups:
            groups[g.name] = (g, [])
            order.append(g.name)
        groups[g.name][1].append(cid)
    return sorted((groups[n] for n in order), key=lambda gi: (-gi[0].seconds, gi[0].name))


def _first_cost(group, seeds):
    return sum(COMPILE_SECONDS.get(f, 5.0) for f in group.families) + group.seconds * seeds


@dataclass(frozen=True)
class Job:
    """One unit of work for a worker: ``kind`` is "shared", "warm", "task" or "figure"."""

    kind: str
    families: tuple = ()
    group: str = ""
    ids: tuple = ()
    seed: int = 0
    check_id: str = ""


class Plan:
    """The job a free worker gets next (module docstring), as the runs come in.

    Parameters
    ----------
    ids : list of str
        The checks to run.
    seeds : list of int
    caching : bool
        Whether the workers share a Numba cache.  Without it nothing is warmed
        (each worker compiles what it calls; warming would only add work).

    Notes
    -----
    The owner asks :meth:`next_job` whenever a worker is free and reports each
    finished job with :meth:`done`; :meth:`add_figure` queues a figure.  The plan
    holds no process state, so the order can be tested without processes.
    """

    def __init__(self, ids, seeds, caching=True):
        self.groups = task_groups(ids)
        self.seeds = list(seeds)
        by_first = sorted(self.groups, key=lambda gi: (_first_cost(gi[0], len(self.seeds)),
                                                       gi[0].name))
        self.first = by_first[0][0].name if by_first else None
        self._tasks = [Job("task", g.families, g.name, tuple(cids), s)
                       for g, cids in self.groups for s in self.seeds]
        self._figures = []
        self._running_warm = set()
        if caching and self._tasks:
            self._shared = "pending"
            first_fams = by_first[0][0].families
            rest = sorted({f for g, _ in self.groups for f in g.families} - set(first_fams),
                          key=lambda f: (-COMPILE_SECONDS.get(f, 5.0), f))
            self._warm = ([Job("warm", tuple(first_fams))] if first_fams else []) + \
                [Job("warm", (f,)) for f in rest]
            self._warm_done = set()
        else:
            self._shared = "done"
            self._warm = []
            self._warm_done = None  # every family counts as warm

    # -- state ---------------------------------------------------------------------------
    def _ready(self, job):
        if self._warm_done is None:
            return True
        return self._shared == "done" and set(job.families) <= self._warm_done

    @property
    def compiling(self):
        """The families being warmed right now (for the progress bar)."""
        return sorted(f for fams in self._running_warm for f in fams)

    def pending(self):
        """Jobs not yet handed out."""
        return (self._shared == "pending") + len(self._warm) + len(self._tasks) + \
            len(self._figures)

    # -- choices -------------------------------------------------------------------------
    def next_job(self):
        """The job to start now, or None (nothing is ready until a running job ends)."""
        if self._shared == "pending":
            self._shared = "running"
            return Job("shared")
        if self._shared == "running":
            return None
        for pick in (self._first_task, self._figure, self._warm_job, self._lpt_task):
            job = pick()
            if job is not None:
                return job
        return None

    def _first_task(self):
        for i, job in enumerate(self._tasks):
            if job.group == self.first and self._ready(job):
                return self._tasks.pop(i)
        return None

    def _figure(self):
        return self._figures.pop(0) if self._figures else None

    def _warm_job(self):
        if not self._warm:
            return None
        job = self._warm.pop(0)
        self._running_warm.add(job.families)
        return job

    def _lpt_task(self):
        # self._tasks is already costliest group first, seeds in order.
        for i, job in enumerate(self._tasks):
            if self._ready(job):
                return self._tasks.pop(i)
        return None

    def done(self, job):
        """Record that ``job`` finished (a failed warm-up counts: its tasks compile)."""
        if job.kind == "shared":
            self._shared = "done"
        elif job.kind == "warm":
            self._running_warm.discard(job.families)
            if self._warm_done is not None:
                self._warm_done.update(job.families)

    def add_figure(self, check_id):
        """Queue the figure of ``check_id`` (its seeds are all in)."""
        self._figures.append(Job("figure", check_id=check_id))
