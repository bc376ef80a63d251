"""Certificates and exact answers: the *lower side* of robustness.

An attack can only show that a point is not robust; this package shows that it
is.  Two functions, for any learner whose ``capabilities`` declare the norm:

* :func:`certified_margin`: a sound lower bound on min_{||delta||_p <= eps} of the
  margin, per point (CROWN-style linear relaxation with optimised slopes for the
  threshold network, linear relaxation and interval bounds for the CNN, gate
  bounds for the frozen-gate NTK, the exact closed form for linear and
  separable-polynomial models);
* :func:`exact_margin`: the exact minimum with a witness or a status (mixed-integer
  LP through HiGHS in linf, branch and bound over activation patterns with convex
  leaves in l2, for the threshold network; the closed forms elsewhere).

Implementations are registered per model ``kind`` (:func:`register_certifier`,
:func:`register_solver`); a model *declares* what it supports in
``capabilities.certify`` / ``capabilities.solve`` / ``capabilities.exact``.
Every bound carries a margin above its own rounding error; every witness is
re-checked on the real model (:func:`recheck`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .._validation import check_bool, check_float, check_instance, check_int, check_norm, norm_name
from ..models._base import Learner
from ..attacks._core import into_ball
from ._cnn import cnn_bounds
from ._ntk import ntk_bounds
from ._two_layer import crown_bounds, ibp_bounds
from ._two_layer_exact import ExactResult, bnb_l2, milp_linf

__all__ = ["certified_margin", "exact_margin", "ExactMargins", "ExactResult", "recheck",
           "register_certifier", "register_solver", "CERTIFIERS", "SOLVERS", "STATUSES",
           "crown_bounds", "ibp_bounds", "milp_linf", "bnb_l2", "cnn_bounds", "ntk_bounds"]

STATUSES = ("optimal", "certified", "broken", "unresolved")
_SLACK = 1e-12  # relative slack on ||delta||_p <= eps when re-checking a witness

CERTIFIERS = {}
SOLVERS = {}


def register_certifier(kind, fn):
    """``fn(model, X, y, eps, p, **options) -> (N,) lower bounds`` for models of ``kind``."""
    CERTIFIERS[kind] = fn


def register_solver(kind, fn):
    """``fn(model, x, y, eps, p, *, time_limit, node_limit, decide) -> ExactResult`` for ``kind``."""
    SOLVERS[kind] = fn


def _boundary(model, X, y, eps, norm):
    check_instance("model", model, Learner)
    p = check_norm(norm)
    eps = check_float("eps", eps, 0.0)
    X, y = model.check_Xy(X, y)
    return X, y, eps, p


def certified_margin(model, X, y, eps, norm, *, check_input=True, **options):
    """Per point, a sound lower bound on min_{||delta||_p <= eps} margin(x + delta).

    A point is certified robust at eps where this is > 0.  Bounds are computed in
    float64 and reduced by an estimate of their own rounding error.

    Parameters
    ----------
    model : learner declaring ``norm`` in ``capabilities.certify`` or ``capabilities.exact``
    X, y : arrays
    eps : float
        Radius >= 0.
    norm : {2, inf}
    **options
        Certifier options (threshold network: ``optimize`` (default True),
        ``iters``, ``lr`` of the slope optimisation).

    Returns
    -------
    (N,) float64 array
    """
    if check_input:
        X, y, eps, p = _boundary(model, X, y, eps, norm)
    else:
        p = norm
    caps = model.capabilities
    if p in caps.exact:
        return np.asarray(model.worst_case_margin(X, y, eps, p, check_input=False),
                          dtype=np.float64)
    if p not in caps.certify or model.kind not in CERTIFIERS:
        raise ValueError(f"no certificate for {type(model).__name__} in norm {norm_name(p)} "
                         f"(capabilities.certify: {sorted(map(norm_name, caps.certify))})")
    return CERTIFIERS[model.kind](model, X, y, eps, p, **options)


def recheck(model, X, y, delta, eps, p):
    """Margins of ``X + delta`` on the real model, and whether each delta is in the ball.

    Returns
    -------
    margin : (N,) array
        The model's own margin at x + delta (a tie is 0, an error).
    inside : (N,) bool array
        ||delta_n||_p <= eps (1 + 1e-12), computed in float64.
    """
    D = np.asarray(delta)
    flat = D.reshape(D.shape[0], -1).astype(np.float64)
    norms = np.linalg.norm(flat, ord=p, axis=1) if flat.shape[1] else np.zeros(D.shape[0])
    inside = norms <= eps * (1.0 + _SLACK)
    Xa = (X + D).astype(X.dtype, copy=False)
    return model.margin(Xa, y, check_input=False), inside


@dataclass
class ExactMargins:
    """Exact answers for a set of points (see :func:`exact_margin`).

    Attributes
    ----------
    status : (N,) array of str
        "optimal" (minimum found to tolerance), "certified" / "broken" (sign
        settled), "unresolved" (budget exhausted; ``lower`` and ``upper`` say
        how far the solver got).
    lower, upper : (N,) arrays
        Bounds on the true minimum margin; ``upper`` is a re-checked witness's margin.
    delta : (N, ...) array
        The best witness per point (zeros where none was found).
    has_witness : (N,) bool array
    n_binary : (N,) int array
        Binaries (linf MILP) or branched neurons (l2).
    seconds : float
    closed_form : bool
        The answers are the model's closed-form worst case (exact by a proof, not a
        search); where no minimiser is available there is no witness to re-check.
    nodes : (N,) int array or None
        Search nodes spent per point (None for closed forms).
    clock : (N,) bool array or None
        Points whose answer a wall-clock safety net cut short (``time_limit`` per point,
        ``total_time`` for all): the only answers that can differ from run to run.
    """

    status: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    delta: np.ndarray
    has_witness: np.ndarray
    n_binary: np.ndarray
    seconds: float
    closed_form: bool = False
    nodes: np.ndarray | None = None
    clock: np.ndarray | None = None

    @property
    def broken(self):
        """Points with a re-checked witness of margin <= 0 (or a closed-form minimum <= 0)."""
        return (self.has_witness | self.closed_form) & (self.upper <= 0)

    @property
    def certified(self):
        """Points whose exact minimum is proven > 0."""
        return self.lower > 0

    @property
    def unresolved(self):
        return ~(self.broken | self.certified)


def exact_margin(model, X, y, eps, norm, *, time_limit=10.0, node_limit=2000, decide=False,
                 total_nodes=None, total_time=None, check_input=True):
    """Exact min over the p-ball of the margin, per point, with a witness or a status.

    Parameters
    ----------
    model : learner declaring ``norm`` in ``capabilities.solve`` or ``capabilities.exact``
    X, y : arrays
    eps : float
    norm : {2, inf}
    time_limit : float, default 10
        Seconds per point for the solver: a safety net (see ``clock`` in the result).
    node_limit : int, default 2000
        Branch-and-bound nodes per point (l2 branch and bound, HiGHS in linf).
    decide : bool, default False
        Stop as soon as the sign of the minimum is settled (enough for a verdict).
    total_nodes : int, optional
        Nodes for all points together (a point costs its nodes, at least 1); points
        not started once it is spent are "unresolved" with bounds (-inf, inf).  Node
        budgets make the answer the same on every run and machine.  Default: no limit.
    total_time : float, optional
        Seconds for all points together, as ``total_nodes`` but by the clock: a safety
        net whose cut-off depends on the machine.  Default: no limit.

    Returns
    -------
    ExactMargins
        Every witness is re-checked on the model (in the ball, margin <= 0 for
        "broken"); a solver answer that the model contradicts raises RuntimeError.
    """
    if check_input:
        X, y, eps, p = _boundary(model, X, y, eps, norm)
        time_limit = check_float("time_limit", time_limit, 0.0, low_open=True)
        node_limit = check_int("node_limit", node_limit, 1)
        decide = check_bool("decide", decide)
        if total_nodes is not None:
            total_nodes = check_int("total_nodes", total_nodes, 1)
        if total_time is not None:
            total_time = check_float("total_time", total_time, 0.0, low_open=True)
    else:
        p = norm
    t0 = time.perf_counter()
    N = X.shape[0]
    caps = model.capabilities
    if p in caps.exact:
        worst = np.asarray(model.worst_case_margin(X, y, eps, p, check_input=False), float)
        delta = np.zeros_like(X)
        has = np.zeros(N, dtype=bool)
        if hasattr(model, "worst_perturbation"):  # a closed-form minimiser to re-check
            delta = model.worst_perturbation(y, eps, p).astype(X.dtype)
            m, inside = recheck(model, X, y, delta, eps, p)
            has = inside
            worst_upper = np.where(inside, m, np.inf)
        else:
            worst_upper = worst
        return ExactMargins(np.full(N, "optimal", dtype=object), worst, worst_upper, delta, has,
                            np.zeros(N, dtype=np.int64), time.perf_counter() - t0,
                            closed_form=not has.all())
    if p not in caps.solve or model.kind not in SOLVERS:
        raise ValueError(f"no exact solver for {type(model).__name__} in norm {norm_name(p)} "
                         f"(capabilities.solve: {sorted(map(norm_name, caps.solve))})")
    solve = SOLVERS[model.kind]
    status = np.empty(N, dtype=object)
    lower, upper = np.empty(N), np.empty(N)
    delta = np.zeros_like(X)
    has = np.zeros(N, dtype=bool)
    nbin = np.zeros(N, dtype=np.int64)
    nodes = np.zeros(N, dtype=np.int64)
    clock = np.zeros(N, dtype=bool)
    spent = 0
    for n in range(N):
        out_of_nodes = total_nodes is not None and spent >= total_nodes
        out_of_time = total_time is not None and time.perf_counter() - t0 > total_time
        if out_of_nodes or out_of_time:
            status[n:], lower[n:], upper[n:] = "unresolved", -np.inf, np.inf
            clock[n:] = out_of_time and not out_of_nodes
            break
        r = solve(model, X[n], y[n], eps, p, time_limit=time_limit, node_limit=node_limit,
                  decide=decide)
        status[n], lower[n], upper[n], nbin[n] = r.status, r.lower, r.upper, r.n_binary
        # A registered solver may predate node counts and the clock flag.
        nodes[n], clock[n] = getattr(r, "nodes", 0), getattr(r, "clock", False)
        spent += max(int(nodes[n]), 1)
        if r.delta is not None:
            # In the model's dtype and inside the ball after rounding (float32 models).
            delta[n] = into_ball(np.asarray(r.delta)[None], eps, p, X.dtype)[0]
            has[n] = True
    if has.any():  # never trust a solver's objective: the model's own margin decides
        m, inside = recheck(model, X[has], y[has], delta[has], eps, p)
        if not inside.all():
            raise RuntimeError("exact solver returned a witness outside the ball")
        upper[has] = m
    bad = has & (lower > upper + 1e-9 * (1.0 + np.abs(upper)))
    if bad.any():
        raise RuntimeError(f"exact solver bound above its own witness for points "
                           f"{np.flatnonzero(bad)[:10].tolist()}")
    return ExactMargins(status, lower, upper, delta, has, nbin, time.perf_counter() - t0,
                        nodes=nodes, clock=clock)


# -- the registered implementations ---------------------------------------------------

def _certify_two_layer(model, X, y, eps, p, *, optimize=True, iters=20, lr=0.02):
    b = model.thresholds()
    plain = crown_bounds(X, y, model.W, b, eps, p)
    if not optimize:
        return plain
    # Slopes are optimised only where the plain bound does not already certify.
    todo = np.flatnonzero(plain <= 0)
    out = plain.copy()
    if todo.size:
        out[todo] = crown_bounds(X[todo], y[todo], model.W, b, eps, p, optimize=True,
                                 iters=iters, lr=lr)
    return out


def _solve_two_layer(model, x, y, eps, p, *, time_limit, node_limit, decide):
    b = model.thresholds()
    if p == np.inf:
        return milp_linf(x, y, model.W, b, eps, time_limit=time_limit, node_limit=node_limit,
                         decide=decide)
    return bnb_l2(x, y, model.W, b, eps, node_limit=node_limit, time_limit=time_limit,
                  decide=decide)


def _certify_cnn(model, X, y, eps, p):
    return cnn_bounds(X, y, model.W, model.q, model.rho, eps, p)


def _certify_ntk(model, X, y, eps, p):
    return ntk_bounds(X, y, model.W0, model.b0, model.two_sided, model.V, model.b, eps, p)


register_certifier("TwoLayerReLU", _certify_two_layer)
register_solver("TwoLayerReLU", _solve_two_layer)
register_certifier("SmoothedReLUCNN", _certify_cnn)
register_certifier("NTKClassifier", _certify_ntk)
