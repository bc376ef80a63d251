"""What a sweep cell runs, and :func:`run_cell`, the one function every backend calls.

Three kinds of experiment (``[experiment] kind`` in the spec):

``pipeline``
    Train-then-attack on a sparse-coding world (:func:`pipeline`): a clean
    two-layer network, its FGM adversarial continuation, the purified oracle
    and the Bayes linear rule M w*, each with a robust-accuracy curve over a
    radius grid and its tau50.
``check``
    A theorem check by id: ``check.run(seed, params)`` with the check's regime
    parameters overridden by the cell's.  Checks are found through the
    ``theorylab.checks`` entry-point group (:func:`check_registry`), which
    theorylab's own ``proofs_check`` and users' packages fill: the sweep layer
    never imports the checks' package.
``callable``
    Any importable ``"module:function"`` taking ``(seed, params)`` and
    returning a dict of measurements (how users plug in their own runs).

:func:`run_cell` never raises for an exception of the experiment: it returns
a ``failed`` result with the traceback, so one bad cell does not stop a sweep.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import socket
import threading
import time
import traceback

import numpy as np

from .._json import to_jsonable

__all__ = ["run_cell", "pipeline", "validate_params", "resolve", "versions", "to_jsonable",
           "check_registry", "PIPELINE_DEFAULTS", "FAMILIES"]

FAMILIES = ("clean", "adversarial", "oracle", "linear")

# None marks a required parameter.
PIPELINE_DEFAULTS = dict(
    d=None, k=None, norm="inf", noise=0.05, codes="pm1", dictionary="identity",
    width_mult=2, init_scale=None, c0=1.0, c1=0.5, ramp_frac=0.5, lr=0.5, batch=256,
    T=600, T_adv=300, eps_train=None, n_test=500, pgd_steps=10, radii=None,
    families=list(FAMILIES),
)


# -- checks, through the entry-point registry -----------------------------------------

def check_registry():
    """Every registered theorem check, id -> check (``.run``, ``.regimes``).

    Loads the entry points of the group ``theorylab.checks``: each names a
    callable returning a mapping of checks (theorylab's is
    ``proofs_check:load_checks``) or a module whose import registers them.
    """
    from importlib.metadata import entry_points

    registry = {}
    for ep in sorted(entry_points(group="theorylab.checks"), key=lambda e: e.name):
        obj = ep.load()
        found = obj() if callable(obj) else getattr(obj, "REGISTRY", {})
        registry.update(found)
    return registry


# -- validation (in the driver, before any work) -----------------------------------

def validate_params(spec):
    """Raise ValueError naming the parameter if a cell of ``spec`` cannot run.

    Pipeline: unknown or missing parameters, unknown families.  Check: an
    unknown check id, and (unless ``strict = false``) a parameter the check's
    regime does not have, which would otherwise be silently ignored.
    """
    names = set(spec.fixed) | set(spec.axes)
    kind = spec.experiment["kind"]
    if kind == "pipeline":
        unknown = sorted(names - set(PIPELINE_DEFAULTS))
        if unknown:
            raise ValueError(f"pipeline: unknown parameter(s) {unknown}; known: "
                             f"{sorted(PIPELINE_DEFAULTS)}")
        for cell in _param_sets(spec):
            p = dict(PIPELINE_DEFAULTS, **cell)
            need = ["d", "k", "radii"] + (["eps_train"] if "adversarial" in p["families"] else [])
            missing = [n for n in need if p[n] is None]
            if missing:
                raise ValueError(f"pipeline: parameter(s) {missing} must be given in [fixed] "
                                 "or [axes]")
            bad = sorted(set(p["families"]) - set(FAMILIES))
            if bad or not p["families"]:
                raise ValueError(f"pipeline: families must be a non-empty subset of "
                                 f"{list(FAMILIES)}, got {p['families']}")
            r = p["radii"]
            if (not isinstance(r, list) or not r
                    or any(not isinstance(x, (int, float)) or isinstance(x, bool) or x <= 0
                           for x in r) or any(b <= a for a, b in zip(r, r[1:]))):
                raise ValueError(f"pipeline: radii must be an increasing list of positive "
                                 f"numbers, got {r!r}")
            if str(p["norm"]) not in ("2", "inf"):
                raise ValueError(f"pipeline: norm must be '2' or 'inf', got {p['norm']!r}")
            for n in ("d", "T", "T_adv", "batch", "n_test", "pgd_steps", "width_mult"):
                v = p[n]
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(f"pipeline: {n} must be an integer >= 1, got {v!r}")
            if not (isinstance(p["k"], (int, float)) and 1 <= p["k"] <= p["d"]):
                raise ValueError(f"pipeline: k must be in [1, d={p['d']}], got {p['k']!r}")
            if p["eps_train"] is not None and not (isinstance(p["eps_train"], (int, float))
                                                   and p["eps_train"] >= 0):
                raise ValueError(f"pipeline: eps_train must be >= 0, got {p['eps_train']!r}")
    elif kind == "check":
        registry = check_registry()
        cid = spec.experiment["check"]
        if cid not in registry:
            raise ValueError(f"experiment.check: unknown check id {cid!r}; known: "
                             f"{sorted(registry)}")
        regime = registry[cid].regimes[spec.experiment.get("regime", "quick")]
        unknown = sorted(names - set(regime))
        if unknown and spec.experiment.get("strict", True):
            raise ValueError(f"check {cid}: parameter(s) {unknown} are not in its regime "
                             f"(set experiment.strict = false to pass them anyway)")
    else:
        module, _, func = spec.experiment["function"].partition(":")
        try:
            fn = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"experiment.function: cannot import "
                             f"{spec.experiment['function']!r}: {exc}") from None
        if not callable(fn):
            raise ValueError(f"experiment.function: {spec.experiment['function']!r} is not "
                             "callable")


def _param_sets(spec):
    import itertools

    names = list(spec.axes)
    for values in itertools.product(*(spec.axes[n] for n in names)):
        yield dict(spec.fixed, **dict(zip(names, values)))


# -- the pipeline experiment --------------------------------------------------------

def pipeline(seed, params):
    """Train clean, then FGM-adversarially; attack every family over the radius grid.

    Parameters
    ----------
    seed : int
        One seed; world, init, clean data, adversarial data and test points are
        independent children of it.
    params : dict
        :data:`PIPELINE_DEFAULTS` overridden by the cell's parameters.  Robust
        accuracy of a network comes from :func:`theorylab.evaluate.robustness`
        (the attack side: no attack of the suite, with PGD at ``pgd_steps``,
        broke the point; and the certified side); the linear rule's is exact.

    Returns
    -------
    dict
        ``radii``; per family f: ``clean_acc_f``, ``tau50_f``, ``robust_acc_f``
        (attack side, a list over ``radii``), and for the networks
        ``certified_acc_f``, ``unresolved_f``, ``tau50_certified_f``; per trained
        network: ``dense_ratio_f``.
    """
    from theorylab import metrics
    from theorylab.evaluate import Budget, robustness
    from theorylab.pipelines.feature_purification import fp_base, fp_run

    p = dict(PIPELINE_DEFAULTS, **params)
    norm = np.inf if str(p["norm"]) == "inf" else 2.0
    radii = [float(r) for r in p["radii"]]
    fams = list(p["families"])
    # The public Feature Purification pipeline: the same networks as a check's for the
    # same parameters and seed.
    run = fp_run(seed, dict(p, norm=norm)) if "adversarial" in fams else fp_base(seed, p)
    world, test = run.world, run.test
    X, y = test.X, test.y
    models = {"clean": run.clean, "adversarial": run.adv, "oracle": run.oracle}

    out = {"radii": radii}
    M = None if world.identity else world.M
    for f in fams:
        if f == "linear":
            # Exact worst case of sign(<u, x>): correct at radius r iff y<u,x> > r ||u||_dual.
            u = world.label_direction
            m = y * (X @ u) / np.linalg.norm(u, ord=1 if norm == np.inf else 2)
            acc = [float(np.mean(m > r)) for r in radii]
            clean = float(np.mean(m > 0))
            # tau50 = inf{r : mean(m > r) < 1/2}, exactly: the ceil(n/2)-th largest margin.
            srt = np.sort(m)[::-1]
            tau = float(max(srt[(len(m) + 1) // 2 - 1], 0.0)) if clean >= 0.5 else 0.0
        else:
            model = models[f]
            # The one evaluation: the attack side (every attack of the suite) and the
            # certified side of each network.
            res = robustness(model, X, y, radii, norm, world=world, seed=seed,
                             budget=Budget(pgd_steps=p["pgd_steps"]))
            clean = res.clean_accuracy
            acc = res.attack_accuracy.tolist()
            tau = res.tau50_attack
            out[f"certified_acc_{f}"] = res.certified_accuracy.tolist()
            out[f"unresolved_{f}"] = res.unresolved.tolist()
            out[f"tau50_certified_{f}"] = res.tau50_certified
            if f != "oracle":
                out[f"dense_ratio_{f}"] = metrics.summarize(model.W, world.w_star, M)[
                    "dense_ratio"]
        out[f"clean_acc_{f}"] = clean
        out[f"tau50_{f}"] = tau
        out[f"robust_acc_{f}"] = acc
    return out


# -- resolution and execution in a worker ------------------------------------------

_RESOLVED = {}
# One cell at a time per process: a Dask worker with several threads must not run
# Numba parallel kernels concurrently (the workqueue layer aborts; numba #8563).
_CELL_LOCK = threading.Lock()


def resolve(experiment):
    """``(run, base_params)`` for an experiment description (memoised per process)."""
    key = json.dumps(experiment, sort_keys=True)
    if key not in _RESOLVED:
        kind = experiment["kind"]
        if kind == "pipeline":
            _RESOLVED[key] = (pipeline, {})
        elif kind == "check":
            check = check_registry()[experiment["check"]]
            _RESOLVED[key] = (check.run, dict(check.regimes[experiment.get("regime", "quick")]))
        else:
            module, _, func = experiment["function"].partition(":")
            _RESOLVED[key] = (getattr(importlib.import_module(module), func), {})
    return _RESOLVED[key]


def versions():
    """Versions of the package and of the libraries a result depends on."""
    from importlib.metadata import version

    import scipy

    from theorylab import __version__

    return {"theorylab": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": version("numba"), "python": platform.python_version()}


def _limits(numba_threads):
    """Context: one BLAS thread, and ``numba_threads`` Numba threads if given.

    Bits must not depend on a BLAS thread count; in worker processes the
    environment already says 1, this also covers workers started by others.
    """
    from theorylab._kernels.threads import limit_threads

    return limit_threads(numba_threads or None, blas_threads=1)


def run_cell(task):
    """Run one cell and return its result; never raises for an error of the experiment.

    Parameters
    ----------
    task : dict
        From :meth:`~theorylab.sweep.spec.Cell.task`: ``key``, ``experiment``,
        ``params``, ``replicate``, ``seed``; optional ``numba_threads``.

    Returns
    -------
    dict
        ``key``, ``status`` ("done" or "failed"), ``metrics`` and ``extra``
        (JSON text), ``error``, ``traceback``, ``started``, ``finished`` (epoch
        seconds), ``seconds``, ``worker`` ("host:pid") and ``versions``.
    """
    with _CELL_LOCK:
        res = {"key": task["key"], "worker": f"{socket.gethostname()}:{os.getpid()}",
               "metrics": None, "extra": None, "error": None, "traceback": None}
        res["started"] = time.time()
        t0 = time.perf_counter()
        try:
            res["versions"] = versions()
            run, base = resolve(task["experiment"])
            params = dict(base, **task["params"])
            with _limits(task.get("numba_threads")):
                out = run(task["seed"], params)
            if not isinstance(out, dict):
                raise TypeError(f"the experiment returned {type(out).__name__}, not a dict")
            out = to_jsonable(out)
            extra = out.pop("extra", None)
            res["metrics"] = json.dumps(out, sort_keys=True)
            res["extra"] = None if extra is None else json.dumps(extra, sort_keys=True)
            res["status"] = "done"
        except Exception as exc:  # recorded with its traceback; the sweep goes on
            res["status"] = "failed"
            res["error"] = f"{type(exc).__name__}: {exc}"
            res["traceback"] = traceback.format_exc()
            res.setdefault("versions", None)
        finally:
            _forget_memoised_runs()
        res["seconds"] = time.perf_counter() - t0
        res["finished"] = time.time()
        return res


def _forget_memoised_runs():
    # The pipelines cache trained networks per process; across the cells of a sweep
    # they are never reused and would only pile up in a long-lived worker.
    from theorylab.pipelines import clear

    clear()


def failed_result(task, error, tb=None, *, worker=None):
    """A ``failed`` result for a cell that never returned (e.g. its worker died)."""
    now = time.time()
    return {"key": task["key"], "status": "failed", "metrics": None, "extra": None,
            "error": error, "traceback": tb, "started": None, "finished": now,
            "seconds": None, "worker": worker, "versions": None}
