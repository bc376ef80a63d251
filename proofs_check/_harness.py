"""The check harness: claims, criteria written before the run, verdicts.

A :class:`Check` declares what it tests (paper, claim, provenance tag), its
parameter regimes, and its pass criteria, each with the reason for its
threshold.  ``run(seed, params)`` returns measurements (a dict of numbers, plus
anything else under ``"extra"``).  :func:`evaluate` turns the measurements of
several seeds into a verdict:

* a criterion PASSES when it holds on every seed, FAILS when it fails on at
  least half of the seeds (rounded up), and is INCONCLUSIVE otherwise or when a
  measurement is missing or not finite;
* a precondition (``kind="precondition"``) that does not hold on some seed makes
  the whole check INCONCLUSIVE, with the reason: the regime cannot test the
  claim, so the claim criteria are reported but not judged;
* otherwise the check FAILS if any claim criterion fails, else it is
  INCONCLUSIVE if any criterion is, else it PASSES;
* a criterion whose key *no* seed measured is an ERROR, and so is the check:
  that is a mistake in the check (a typo in the key, a measurement the run
  forgot), not a property of the claim, and the reason says which measured key
  was probably meant;
* a seed whose training did not converge (the measurement ``converged`` is
  false, :data:`CONVERGED`) makes the check INCONCLUSIVE, with that seed's
  ``not_converged_reason`` (:data:`NOT_CONVERGED_REASON`): a verdict on a
  transient would say when training stopped, not what it learns.  The criteria
  are reported but not judged.  :func:`convergence_measurements` makes both keys
  (and the measured diagnostics) from the runs' training histories.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Criterion", "Check", "CriterionResult", "CheckResult", "evaluate", "register",
           "REGISTRY", "SOURCES", "PASS", "FAIL", "INCONCLUSIVE", "ERROR", "CONVERGED",
           "NOT_CONVERGED_REASON", "convergence_measurements", "unconverged_runs"]

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
#: The verdict of a check that raised, or whose criteria name a key no seed measured.
ERROR = "ERROR"
#: Measurement keys of a run's training convergence (see :func:`evaluate`).
CONVERGED, NOT_CONVERGED_REASON = "converged", "not_converged_reason"
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Criterion:
    """``measurements[key] op threshold`` on every seed, and why that threshold.

    Parameters
    ----------
    key : str
        Name of a measurement returned by the check's ``run``.
    op : {">=", ">", "<=", "<"}
    threshold : float
    reason : str
        Why this number: a theory scaling, a pilot value, a statistical slack.
    kind : {"claim", "precondition"}
        A precondition guards the meaning of the claim (e.g. the regime must
        separate the models the claim compares); failing it gives
        INCONCLUSIVE whatever the claim criteria say.
    """

    key: str
    op: str
    threshold: float
    reason: str
    kind: str = "claim"

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {sorted(_OPS)}, got {self.op!r}")
        if self.kind not in ("claim", "precondition"):
            raise ValueError(f"kind must be 'claim' or 'precondition', got {self.kind!r}")

    def holds(self, value):
        return _OPS[self.op](value, self.threshold)

    def describe(self):
        return f"{self.key} {self.op} {self.threshold:g}"

    def margin(self, value):
        """Signed distance of ``value`` from the threshold: positive on the holding side.

        ``value - threshold`` for ``>=`` / ``>``, ``threshold - value`` for ``<=`` / ``<``
        (a strict criterion at margin 0 does not hold); NaN for a value that is not a
        finite or infinite number.
        """
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return math.nan
        return value - self.threshold if self.op in (">=", ">") else self.threshold - value


@dataclass
class Check:
    """One claim of one paper as a runnable experiment.

    Attributes
    ----------
    id : str
        Stable identifier, e.g. ``"fp.v1_clean_l2"``.
    paper : str
        ``"Feature Purification (Allen-Zhu & Li 2021)"`` or the Li & Li paper.
    claim : str
        The claim in one or two sentences.
    provenance : str
        ``"[C]"`` (the paper's, confirmed) or ``"[D]"`` (our derivation /
        reconstruction); see the specs' section 0.
    regimes : dict
        ``{"quick": params, "full": params}``; ``params`` is passed to ``run``.
    criteria : list of Criterion
    run : callable
        ``run(seed, params) -> dict`` of measurements.
    figure : callable, optional
        ``figure(results) -> matplotlib Figure`` from the list of per-seed
        measurement dicts; saved next to the report.
    notes : str
        What the reader should know (deviations from the paper, caveats).
    """

    id: str
    paper: str
    claim: str
    provenance: str
    regimes: dict
    criteria: list
    run: Callable
    figure: Callable | None = None
    notes: str = ""

    def __post_init__(self):
        if self.provenance not in ("[C]", "[D]", "[R]"):
            raise ValueError(f"provenance must be [C], [D] or [R], got {self.provenance!r}")
        if not {"quick", "full"} <= set(self.regimes):
            raise ValueError(f"check {self.id}: regimes must define 'quick' and 'full'")


@dataclass
class CriterionResult:
    criterion: Criterion
    values: list
    status: str
    reason: str = ""

    def summary(self):
        vals = [v for v in self.values if _finite(v)]
        if not vals:
            return "n/a"
        vals.sort()
        med = vals[len(vals) // 2] if len(vals) % 2 else 0.5 * (vals[len(vals) // 2 - 1]
                                                               + vals[len(vals) // 2])
        return f"{med:.3g} [{vals[0]:.3g}, {vals[-1]:.3g}]" if len(vals) > 1 else f"{med:.3g}"


@dataclass
class CheckResult:
    check: Check
    regime: str
    seeds: list
    measurements: list
    criteria: list
    verdict: str
    reason: str = ""
    seconds: float = 0.0
    figure_path: str | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)


def _finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def convergence_measurements(histories):
    """The convergence measurements of a run from its training histories.

    Parameters
    ----------
    histories : dict
        Name (``"clean"``, ``"adv"``, ...) -> :class:`theorylab.training.History`;
        histories without a diagnosis (``convergence`` None) are skipped.

    Returns
    -------
    dict
        ``converged`` (every history converged), ``not_converged_reason`` (each
        unconverged history's reason, named) and ``convergence_<name>_<criterion>``,
        the measured relative change of each criterion (for the report).
    """
    out, reasons = {}, []
    for name, history in histories.items():
        diag = getattr(history, "convergence", None)
        if diag is None:
            continue
        for crit, c in diag["criteria"].items():
            if c["value"] is not None:
                out[f"convergence_{name}_{crit}"] = float(c["value"])
        if not diag["converged"]:
            reasons.append(f"{name} training: {diag['reason']}")
    out[CONVERGED] = not reasons
    out[NOT_CONVERGED_REASON] = "; ".join(reasons)
    return out


_RUN_REASON = re.compile(r"(?:^|; )(\w+) training: ")


def unconverged_runs(reason):
    """The run names of a ``not_converged_reason`` (:func:`convergence_measurements`' text).

    ``"adv training: loss still falling ...; clean training: ..."`` -> ``{"adv", "clean"}``;
    the empty reason of a converged seed -> ``set()``.
    """
    return set(_RUN_REASON.findall(reason or ""))


def _not_converged(measurements, seeds):
    # "seed s: reason" for each seed whose run says its training did not converge.
    labels = seeds if seeds is not None and len(seeds) == len(measurements) \
        else range(len(measurements))
    return [f"seed {s}: {m.get(NOT_CONVERGED_REASON) or 'training did not converge'}"
            for s, m in zip(labels, measurements) if CONVERGED in m and not m[CONVERGED]]


def evaluate(check, measurements, seeds=None):
    """Verdict of ``check`` from a list of per-seed measurement dicts.

    ``seeds`` (the seeds of ``measurements``, in order) only labels the reasons.

    Returns
    -------
    verdict : str
    reason : str
    results : list of CriterionResult
    """
    n = len(measurements)
    measured = sorted({k for m in measurements for k in m if k != "extra"})
    results = []
    for crit in check.criteria:
        if n and not any(crit.key in m for m in measurements):
            close = difflib.get_close_matches(crit.key, measured, n=3)
            hint = (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close
                    else f"; measured keys: {', '.join(measured) or 'none'}")
            results.append(CriterionResult(crit, [math.nan] * n, ERROR,
                                           f"criterion key {crit.key!r} was measured on no "
                                           f"seed{hint}"))
            continue
        values = [m.get(crit.key, float("nan")) for m in measurements]
        values = [float(v) if isinstance(v, (int, float)) else float("nan") for v in values]
        if not all(_finite(v) or v in (math.inf, -math.inf) for v in values):
            results.append(CriterionResult(crit, values, INCONCLUSIVE,
                                           f"{crit.key} was not measured on every seed"))
            continue
        fails = sum(not crit.holds(v) for v in values)
        if fails == 0:
            results.append(CriterionResult(crit, values, PASS))
        elif fails >= math.ceil(n / 2):
            results.append(CriterionResult(crit, values, FAIL,
                                           f"{crit.describe()} fails on {fails}/{n} seeds"))
        else:
            results.append(CriterionResult(crit, values, INCONCLUSIVE,
                                           f"{crit.describe()} fails on {fails}/{n} seeds"))
    broken = [r for r in results if r.status == ERROR]
    if broken:
        return ERROR, "; ".join(r.reason for r in broken), results
    unconverged = _not_converged(measurements, seeds)
    if unconverged:
        return INCONCLUSIVE, "training did not converge (claim not judged): " + "; ".join(
            unconverged), results
    pre = [r for r in results if r.criterion.kind == "precondition" and r.status != PASS]
    if pre:
        return INCONCLUSIVE, "precondition not met (claim not judged): " + "; ".join(
            r.reason or r.criterion.describe() for r in pre), results
    claim_fail = [r for r in results if r.criterion.kind == "claim" and r.status == FAIL]
    if claim_fail:
        return FAIL, "; ".join(r.reason for r in claim_fail), results
    unsure = [r for r in results if r.status == INCONCLUSIVE]
    if unsure:
        return INCONCLUSIVE, "; ".join(r.reason for r in unsure), results
    return PASS, "", results


REGISTRY = {}
#: Where each registered check came from: check id -> :class:`Source`.
SOURCES = {}


@dataclass(frozen=True)
class Source:
    """Where a check was registered from, and how a worker process gets it again.

    ``kind`` is ``"theorylab"`` (theorylab's own checks), ``"entry point"`` (an
    installed package's entry point of the group ``theorylab.checks``; ``target``
    is its name), ``"module"`` (``theorylab check --module``; ``target`` is the
    path or dotted name given) or ``"register"`` (a :func:`register` call outside
    any loader; ``target`` is the module of the check's ``run``).
    """

    kind: str
    target: str = ""
    label: str = ""

    def describe(self):
        if self.kind == "theorylab":
            return "theorylab"
        return f"{self.kind} {self.label or self.target}"

    @property
    def reloadable(self):
        """Whether a fresh process can register the check again from this source."""
        return self.kind != "register" or self.target not in ("__main__", "", None)


_LOADING = []


@contextlib.contextmanager
def loading_from(source):
    """Attribute the checks registered inside the block to ``source``."""
    _LOADING.append(source)
    try:
        yield
    finally:
        _LOADING.pop()


def register(check, *, replace=False):
    """Add ``check`` to the registry and return it.

    Parameters
    ----------
    check : Check
    replace : bool, default False
        Replace a check already registered under the same id (re-running a
        notebook cell that defines a check) instead of raising.

    Raises
    ------
    ValueError
        If the id is taken and ``replace`` is false.
    """
    if check.id in REGISTRY and not replace:
        raise ValueError(f"duplicate check id {check.id!r} (already registered from "
                         f"{_describe(check.id)}); pass replace=True to replace it")
    module = getattr(check.run, "__module__", "") or ""
    if _LOADING:
        source = _LOADING[-1]
    elif module.startswith(__name__.rsplit(".", 1)[0] + "."):
        source = Source("theorylab")
    else:
        source = Source("register", module)
    REGISTRY[check.id] = check
    SOURCES[check.id] = source
    return check


def _describe(check_id):
    source = SOURCES.get(check_id)
    return source.describe() if source is not None else "an unknown source"
