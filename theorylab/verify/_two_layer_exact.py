"""Exact worst-case margins of the two-layer symmetric threshold network, one point at a time.

* :func:`milp_linf`: the linf ball as a mixed-integer LP (``scipy.optimize.milp``, HiGHS).
* :func:`bnb_l2`: the l2 ball by branch and bound over the linear pieces of the unstable
  neurons, each node bounded through the Lagrange dual of a tiny convex problem.

Notation as in :mod:`._two_layer`: ``v_i = y w_i``, ``z_i = <v_i, x + delta>``, the margin is
``sum_i st_{b_i}(z_i)``.  Neurons whose (sound, widened) interval lies in one linear piece are
fixed on the whole ball and fold into ``const + <c, delta>``; only the unstable ones cost
anything.  Every witness is re-evaluated on the real network in float64 (:func:`margin`) after
clipping it into the ball; ``upper`` is always such a re-checked margin, never a solver
objective.  Verdict rules (see :attr:`ExactResult.verdict`): broken iff ``upper <= 0`` (a tie
counts), certified iff ``lower > 0``.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp, minimize

from ._two_layer import (_TINY, _chord_slopes, _classify, _gamma, _intercepts, _intervals,
                         _labels, _widening, crown_bounds, ibp_bounds, margin, st)

__all__ = ["ExactResult", "milp_linf", "bnb_l2"]

_HIGHS_TOL = 1e-7   # HiGHS's default primal and dual feasibility tolerances
_BNB_RTOL = 1e-8    # relative gap at which a BnB node (or the whole tree) counts as closed
_SLACK = 1e-12      # relative slack on ||delta|| <= eps for a witness


@dataclass
class ExactResult:
    """Outcome of an exact solve for one point.

    Attributes
    ----------
    status : {"optimal", "certified", "broken", "unresolved"}
        How the run ended: "optimal" when ``upper - lower`` is within the solver tolerance,
        "broken"/"certified" when the sign is settled without closing the gap (always first
        with ``decide=True``), "unresolved" otherwise (time or node budget).
    lower, upper : float
        Bounds on the true minimum of ``y f(x + delta)`` over the ball; ``upper`` is the
        re-checked margin of ``delta``.
    delta : ndarray or None
        The best re-checked point of the ball found (None only if none was).
    n_binary : int
        Binaries in the MILP (linf) or unstable neurons branched over (l2).
    seconds : float
        Wall time.
    nodes : int
        Branch-and-bound nodes bounded (l2) or explored by HiGHS (linf).
    clock : bool
        The wall-clock safety net ended the search.  Every other budget counts nodes,
        so only such a result can differ from run to run.
    """

    status: str
    lower: float
    upper: float
    delta: np.ndarray | None
    n_binary: int
    seconds: float
    nodes: int = 0
    clock: bool = False

    @property
    def verdict(self):
        """Verdict from the bounds alone: "broken", "certified" or "unresolved"."""
        if self.delta is not None and self.upper <= 0:
            return "broken"
        return "certified" if self.lower > 0 else "unresolved"


class _Point:
    """One point's folded network: intervals, stable part, unstable neurons, witness keeping."""

    def __init__(self, x, y, W, b, eps, p):
        self.x = np.asarray(x, dtype=np.float64).ravel()
        self.W = np.asarray(W, dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)
        self.y = float(_labels(y, 1)[0])
        self.eps, self.p, self.d = float(eps), p, self.x.size
        z0, lo, hi, a, c = _intervals(self.x[None], np.array([self.y]), self.W, self.b,
                                      self.eps, p)
        self.z0, self.lo, self.hi, self.a, self.cscale = z0[0], lo[0], hi[0], a[0], c[0]
        self.l1 = np.abs(self.W).sum(axis=1)
        self.w = _widening(np.array([self.a]), self.l1, self.d)[0]
        linear, _, unstable = _classify(self.lo, self.hi, self.b)
        self.V = self.y * self.W
        inter = np.where(self.hi <= -self.b, self.b, -self.b)   # z + b below, z - b above
        self.c = linear.astype(np.float64) @ self.V
        self.const = float(np.sum(np.where(linear, self.z0 + inter, 0.0)))
        self.linear, self.U = linear, np.flatnonzero(unstable)
        self.upper, self.delta = np.inf, None

    def offer(self, delta):
        """Re-check a candidate on the real network; keep it if it lowers ``upper``."""
        delta = np.asarray(delta, dtype=np.float64).ravel()
        if not np.all(np.isfinite(delta)):
            return np.inf
        if self.p == np.inf:
            delta = np.clip(delta, -self.eps, self.eps)
            size = np.abs(delta).max(initial=0.0)
        else:
            size = np.linalg.norm(delta)
            if size > self.eps:
                delta = delta * (self.eps / size)
                size = np.linalg.norm(delta)
        if size > self.eps * (1 + _SLACK):
            return np.inf
        val = margin(self.x + delta, self.y, self.W, self.b)
        if val < self.upper:
            self.upper, self.delta = val, delta
        return val

    def polish(self, snap):
        """Look for a tie or a negative margin next to the best witness (its pattern, shrunk).

        Solver witnesses sit on piece boundaries, where rounding decides the sign of a
        near-zero margin.  Neurons within ``snap`` of their threshold are assigned to the dead
        zone, the others keep their piece; every piece is shrunk by ``s`` (far above the
        solvers' feasibility error) and the now linear margin is minimised over the ball
        (linprog for linf, SLSQP for l2).  The result is only offered, i.e. re-checked.
        """
        U, d0 = self.U, self.delta
        if d0 is None or U.size == 0:
            return
        Vu, z0, b = self.V[U], self.z0[U], self.b[U]
        z = z0 + Vu @ d0
        piece = np.where(np.abs(z) - b <= snap, 1, np.where(z > 0, 2, 0))
        s = 1e-9 * (1 + np.abs(z).max())
        rows = [Vu[piece <= 1], -Vu[piece >= 1]]
        rhs = [np.where(piece == 0, -b, b)[piece <= 1] - z0[piece <= 1] - s,
               (z0 + np.where(piece == 1, b, -b))[piece >= 1] - s]
        A, r = np.concatenate(rows), np.concatenate(rhs)
        c = self.c + (piece != 1).astype(np.float64) @ Vu
        if self.p == np.inf:
            res = linprog(c, A_ub=A, b_ub=r, bounds=(-self.eps, self.eps), method="highs")
        else:
            cons = [dict(type="ineq", fun=lambda x: r - A @ x, jac=lambda x: -A),
                    dict(type="ineq", fun=lambda x: self.eps ** 2 - x @ x,
                         jac=lambda x: -2 * x[None])]
            res = minimize(lambda x: (c @ x, c), d0, jac=True, method="SLSQP",
                           constraints=cons, options=dict(maxiter=200, ftol=1e-15))
        if res.x is not None:
            self.offer(res.x)

    def result(self, lower, tol, decide, n_binary, t0, nodes=0, clock=False):
        if lower <= 0 < self.upper <= tol:   # sign unsettled within the tolerance
            self.polish(max(2 * self.upper, tol))
        up = self.upper
        if decide and up <= 0:
            status = "broken"
        elif decide and lower > 0:
            status = "certified"
        elif up - lower <= tol:
            status = "optimal"
        else:
            status = "broken" if up <= 0 else "certified" if lower > 0 else "unresolved"
        return ExactResult(status, float(lower), float(up), self.delta, int(n_binary),
                           time.perf_counter() - t0, int(nodes), bool(clock))


def _crown_start(P):
    """Best of optimised CROWN and IBP for the point, and the CROWN minimiser (a witness)."""
    lb, al = crown_bounds(P.x[None], [P.y], P.W, P.b, P.eps, P.p, optimize=True,
                          return_slopes=True)
    lb = max(lb[0], ibp_bounds(P.x[None], [P.y], P.W, P.b, P.eps, P.p)[0])
    lam = al[0] @ P.V
    if P.p == np.inf:
        return float(lb), -P.eps * np.sign(lam)
    n = np.linalg.norm(lam)
    return float(lb), (-P.eps * lam / n if n > 0 else np.zeros_like(lam))


# ------------------------------------------------------------------------------ linf MILP

@contextlib.contextmanager
def _c_stdout_silenced():
    # HiGHS prints a debugging line from C++ ("HighsMipSolverData::transformNewInteger...")
    # even with disp=False; it would break progress bars and piped output.  Only file
    # descriptor 1 is redirected, only around one solve.
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(null)
    finally:
        os.close(saved)


def milp_linf(x, y, W, b, eps, *, time_limit=10.0, node_limit=None, decide=False):
    """Exact ``min_{||delta||_inf <= eps} y f(x + delta)`` for one point, by a MILP.

    Each unstable neuron is ``st_b(z) = p - q`` with ``p = relu(z - b)``, ``q = relu(-z - b)``.
    The objective minimises p, so ``p >= z - b, p >= 0`` is exact (no binary); it maximises q,
    so q needs a binary s with big-M rows from the interval (``q <= t - t_lo (1 - s)``,
    ``q <= t_hi s``, ``t = -z - b``), and only where the interval crosses ``-b``.  p (q) is 0
    where the interval does not cross ``+b`` (``-b``).

    Parameters
    ----------
    x : array_like, shape (d,)
    y : {-1, +1}
    W : array_like, shape (m, d)
    b : array_like, shape (m,)
    eps : float
    time_limit : float, optional
        Seconds for HiGHS: a safety net (a result it ends is marked ``clock``).
    node_limit : int, optional
        Branch-and-bound nodes for HiGHS; the deterministic budget.  None: no limit.
    decide : bool, optional
        Stop once the sign is settled: CROWN > 0 or a CROWN-direction vertex with margin <= 0
        settles it before any MILP is built.

    Returns
    -------
    ExactResult

    Notes
    -----
    Tolerance: HiGHS solves to feasibility tolerances ``tau = 1e-7`` (absolute), so its dual
    bound can be off by about ``tau`` times the objective's l1 size and the variables'
    ranges.  ``tol = 10 tau (1 + S)`` with ``S = ||c||_1 + 2 eps d + sum of the p, q ranges +
    number of rows``; ``lower = max(CROWN, IBP, const + dual bound - tol)`` (CROWN with
    optimised slopes and IBP are sound on their own), so "certified" means the dual bound
    exceeds ``tol``.  "optimal" when
    ``upper - lower <= 3 tol`` (``tol`` on each side plus HiGHS's absolute gap 1e-6 <= tol).
    """
    t0 = time.perf_counter()
    P = _Point(x, y, W, b, eps, np.inf)
    P.offer(np.zeros(P.d))
    lower, guess = _crown_start(P)
    P.offer(guess)
    d, V, z0, lo, hi, bb = P.d, P.V, P.z0, P.lo, P.hi, P.b
    jp = P.U[(lo[P.U] < bb[P.U]) & (bb[P.U] < hi[P.U])]       # p varies
    jq = P.U[(lo[P.U] < -bb[P.U]) & (-bb[P.U] < hi[P.U])]     # q varies: binary
    kp, kq = jp.size, jq.size
    if (decide and (lower > 0 or P.upper <= 0)) or kp + kq == 0:
        # Settled already, or no unstable neuron: f is linear on the box and CROWN is its
        # exact minimum, reached at the vertex -eps sign(c).
        P.offer(-P.eps * np.sign(P.c))
        tol = 10 * _HIGHS_TOL * (1 + np.abs(P.c).sum())
        return P.result(lower, 3 * tol, decide, kq, t0)

    tlo, thi = -hi[jq] - bb[jq], -lo[jq] - bb[jq]    # range of t = -z - b, tlo < 0 < thi
    n = d + kp + 2 * kq
    cost = np.concatenate([P.c, np.ones(kp), -np.ones(kq), np.zeros(kq)])
    A = np.zeros((kp + 2 * kq, n))
    A[:kp, :d] = V[jp]
    A[:kp, d:d + kp] = -np.eye(kp)                                    # v.delta - p <= b - z0
    r1 = slice(kp, kp + kq)
    A[r1, :d] = V[jq]
    A[r1, d + kp:d + kp + kq] = np.eye(kq)
    A[r1, d + kp + kq:] = -np.diag(tlo)                     # q <= t - tlo (1 - s)
    r2 = slice(kp + kq, kp + 2 * kq)
    A[r2, d + kp:d + kp + kq] = np.eye(kq)
    A[r2, d + kp + kq:] = -np.diag(thi)                     # q <= thi s
    rhs = np.concatenate([bb[jp] - z0[jp], -z0[jq] - bb[jq] - tlo, np.zeros(kq)])
    ub = np.concatenate([np.full(d, P.eps), hi[jp] - bb[jp], thi, np.ones(kq)])
    lb = np.concatenate([np.full(d, -P.eps), np.zeros(kp + 2 * kq)])
    integrality = np.concatenate([np.zeros(d + kp + kq), np.ones(kq)])
    S = np.abs(P.c).sum() + 2 * P.eps * d + (ub[d:] - lb[d:]).sum() + A.shape[0]
    tol = 10 * _HIGHS_TOL * (1 + S)
    remaining = max(time_limit - (time.perf_counter() - t0), 1e-3)
    options = dict(time_limit=remaining, mip_rel_gap=1e-9, disp=False)
    if node_limit is not None:
        options["node_limit"] = int(node_limit)
    with _c_stdout_silenced():
        res = milp(cost, constraints=LinearConstraint(A, -np.inf, rhs),
                   integrality=integrality, bounds=Bounds(lb, ub), options=options)
    # scipy reports HiGHS's own limit in the message; node limits are not "Time limit".
    clock = "time limit" in str(getattr(res, "message", "")).lower()
    dual = getattr(res, "mip_dual_bound", None)
    if dual is None or not np.isfinite(dual):
        dual = res.fun if res.status == 0 and res.fun is not None else -np.inf
    lower = max(lower, P.const + dual - tol)
    if res.x is not None:
        P.offer(res.x[:d])
    nodes = int(getattr(res, "mip_node_count", 0) or 0)
    return P.result(lower, 3 * tol, decide, kq, t0, nodes, clock)


# ------------------------------------------------------------------------------ l2 BnB

class _Stop(Exception):
    """Raised inside the dual ascent once a node's bound reaches its pruning threshold."""


class _Node:
    __slots__ = ("fixed", "lower", "alpha", "lam", "branch", "leaf")


class _L2Tree:
    """Node bounds for :func:`bnb_l2` (see there); pieces 0: z <= -b, 1: |z| <= b, 2: z >= b."""

    def __init__(self, P):
        self.P, U = P, P.U
        self.Vu, self.z0, self.lo, self.hi = P.V[U], P.z0[U], P.lo[U], P.hi[U]
        self.b, self.w, self.l1 = P.b[U], P.w[U], P.l1[U]
        self.l1_lin = float(P.l1[P.linear].sum())
        self.n_err = P.d + P.W.shape[0] + 8

    def pieces(self, j):
        return [k for k, ok in enumerate((self.lo[j] < -self.b[j], True,
                                          self.hi[j] > self.b[j])) if ok]

    def _rows(self, fixed):
        # Piece constraints on delta, each relaxed by the widening w >= |fl(z0) - z0| so that
        # the float regions cover the exact ones.  On the relaxed sliver the piece's line is
        # off st by at most 3 w, which the bound pays per fixed neuron.
        coef, inter = np.zeros(len(self.b)), np.zeros(len(self.b))
        rj, rs, rr = [], [], []
        for j, k in fixed:
            z0, b, w = self.z0[j], self.b[j], self.w[j]
            coef[j], inter[j] = (1.0, b) if k == 0 else (0.0, 0.0) if k == 1 else (1.0, -b)
            if k <= 1:
                rj.append(j), rs.append(1.0), rr.append((-b if k == 0 else b) - z0 + w)
            if k >= 1:
                rj.append(j), rs.append(-1.0), rr.append(z0 + (b if k == 1 else -b) + w)
        return coef, inter, np.array(rj, int), np.array(rs), np.array(rr)

    def bound(self, fixed, alpha0, lam0, stop_at):
        """Maximise the node's dual over (free slopes, multipliers); returns a _Node."""
        P, eps = self.P, self.P.eps
        free = np.array([j for j in range(len(self.b)) if j not in dict(fixed)], int)
        coef0, inter, rj, rs, rr = self._rows(fixed)
        nf, fix_slack = free.size, 3 * sum(self.w[j] for j, _ in fixed)
        lo, hi, bf, z0f = self.lo[free], self.hi[free], self.b[free], self.z0[free]
        best = [-np.inf, None]

        def evaluate(theta, mu=0.0):
            # Dual value with ||g|| smoothed to sqrt(||g||^2 + mu^2) (smaller, so still a
            # bound); the kept bound uses the exact norm and pays for its rounding.
            al, lam = np.clip(theta[:nf], 0, 1), np.maximum(theta[nf:], 0)
            beta, zstar = _intercepts(lo, hi, bf, al)
            coef = coef0.copy()
            coef[free] = al
            kappa = coef.copy()
            np.add.at(kappa, rj, rs * lam)
            g = P.c + kappa @ self.Vu
            ng = np.linalg.norm(g)
            val = P.const + coef @ self.z0 + inter.sum() + beta.sum() - lam @ rr - eps * ng
            T = (3 * P.a * (np.abs(kappa) @ self.l1 + self.l1_lin) + P.cscale
                 + np.abs(beta).sum() + np.abs(lam) @ np.abs(rr))
            low = val - 2 * _gamma(self.n_err + rr.size) * T - fix_slack - _TINY
            if low > best[0]:
                best[0], best[1] = low, np.concatenate([al, lam])
            nm = np.hypot(ng, mu)
            gk = -eps * (self.Vu @ (g / nm)) if nm > 0 else np.zeros(len(self.b))
            grad = np.concatenate([z0f - zstar + gk[free], -rr + rs * gk[rj]])
            return val - eps * (nm - ng), grad, g

        def fun(theta, mu):
            val, grad, _ = evaluate(theta, mu)
            if best[0] >= stop_at:
                raise _Stop
            return -val, -grad

        theta = np.concatenate([alpha0, lam0, np.zeros(rr.size - lam0.size)])
        box = [(0, 1)] * nf + [(0, None)] * rr.size
        try:
            # The dual is not smooth where g = 0 (the ball is inactive at the optimum, e.g. a
            # vertex of the polyhedron inside it): continuation on the smoothing mu.
            for mu in self.mus:
                theta = minimize(fun, theta, args=(mu,), jac=True, method="L-BFGS-B",
                                 bounds=box, options=dict(maxiter=200, ftol=1e-15,
                                                          gtol=1e-12)).x
        except _Stop:
            pass
        node = _Node()
        node.fixed, node.leaf = fixed, nf == 0
        _, _, g = evaluate(best[1])
        ng = np.linalg.norm(g)
        dhat = -eps * g / ng if ng > 0 else np.zeros(P.d)
        P.offer(dhat)
        if node.leaf and P.upper - best[0] > self.tol and best[0] < stop_at:
            lam = self._primal(coef0, rj, rs, rr, dhat)
            if lam is not None:
                evaluate(lam)
        node.lower = best[0]
        node.alpha, node.lam = best[1][:nf], best[1][nf:]
        if node.leaf:
            return node
        # Branch on the free neuron whose line is loosest at dhat (static gap breaks ties).
        al, beta = node.alpha, _intercepts(lo, hi, bf, node.alpha)[0]
        z = z0f + self.Vu[free] @ dhat
        gap = st(z, bf) - al * z - beta
        if gap.max() <= 1e-12 * (1 + np.abs(z).max()):
            gap = np.max([st(c, bf) - al * c - beta for c in (lo, hi)], axis=0)
        node.branch = free[int(np.argmax(gap))]
        return node

    def _primal(self, coef, rj, rs, rr, start):
        """SLSQP on a leaf: min <c, delta> over polyhedron ∩ ball (exactly linear there).

        The point is re-checked as a witness; its row multipliers (when SciPy reports them)
        are returned, to be evaluated in the dual (sound for any lambda >= 0).
        """
        P = self.P
        c, A = P.c + coef @ self.Vu, rs[:, None] * self.Vu[rj]
        cons = [dict(type="ineq", fun=lambda d: rr - A @ d, jac=lambda d: -A),
                dict(type="ineq", fun=lambda d: P.eps ** 2 - d @ d, jac=lambda d: -2 * d[None])]
        res = minimize(lambda d: (c @ d, c), start, jac=True, method="SLSQP", constraints=cons,
                       options=dict(maxiter=200, ftol=1e-15))
        P.offer(res.x)
        mult = getattr(res, "multipliers", None)
        if mult is None or np.size(mult) < rr.size:
            return None
        return np.maximum(np.asarray(mult, dtype=np.float64)[:rr.size], 0.0)


def bnb_l2(x, y, W, b, eps, *, node_limit=2000, time_limit=10.0, decide=False):
    """Exact ``min_{||delta||_2 <= eps} y f(x + delta)`` for one point, by branch and bound.

    A node fixes the piece of some unstable neurons (linear rows ``A delta <= r`` on delta);
    fixed neurons are exactly linear there and the free ones are relaxed by CROWN lines over
    their intervals, so the node's bound is ``min <c, delta> + const`` over ball ∩ polyhedron.
    Its Lagrange dual ``max_{lambda >= 0} const - <r, lambda> - eps ||c + A^T lambda||_2`` is
    maximised jointly with the free slopes (jointly concave) by L-BFGS-B; *every* evaluated
    point is a sound bound (weak duality) and the best is kept, minus its rounding error.
    ``-eps g / ||g||`` (g = c + A^T lambda) is a point of the ball and is re-checked as a
    witness; a leaf (every unstable neuron fixed) also gets an SLSQP primal solve when its gap
    is open.  Empty nodes have an unbounded dual and are pruned as soon as their bound passes
    the threshold; their candidate points still only count after re-checking.

    Parameters
    ----------
    x, y, W, b, eps
        As in :func:`milp_linf`.
    node_limit : int, optional
        Nodes bounded before giving up ("unresolved" unless the sign is settled).
    time_limit : float, optional
        Seconds, checked between nodes: a safety net (a result it ends is marked
        ``clock``); ``node_limit`` is the deterministic budget.
    decide : bool, optional
        Prune nodes whose bound is > 0 and stop at the first re-checked witness <= 0.

    Returns
    -------
    ExactResult
        ``lower = max(CROWN, IBP, root bound, min over open and closed nodes)``.

    Notes
    -----
    Best-first; a node is closed when its bound is ``>= upper - tol`` (or > 0 with decide),
    ``tol = 1e-8 (1 + S)``, ``S = |const| + eps ||c||_2 + sum over unstable neurons of
    (|z0| + half-width + b)``; "optimal" when ``upper - lower <= tol``.  No solver tolerance
    enters the bounds: they are our own float64 evaluations of the dual minus their rounding
    error (module :mod:`._two_layer` rules, plus 3 w per fixed neuron for the relaxed rows), so
    "certified" is ``lower > 0``.  Branching is on the free neuron whose relaxation gap is
    largest at the node's candidate point.
    """
    t0 = time.perf_counter()
    P = _Point(x, y, W, b, eps, 2)
    P.offer(np.zeros(P.d))
    crown, guess = _crown_start(P)
    P.offer(guess)
    U = P.U
    S = (abs(P.const) + P.eps * np.linalg.norm(P.c)
         + np.sum(np.abs(P.z0[U]) + 0.5 * (P.hi[U] - P.lo[U]) + P.b[U]))
    tol = _BNB_RTOL * (1 + S)
    if U.size == 0 or (decide and (crown > 0 or P.upper <= 0)):
        if U.size == 0:
            P.offer(-P.eps * P.c / max(np.linalg.norm(P.c), _TINY))
        return P.result(crown, tol, decide, U.size, t0)

    tree = _L2Tree(P)
    tree.tol = tol
    scale = np.linalg.norm(P.c) + np.linalg.norm(tree.Vu, axis=1).sum()
    tree.mus = (1e-2 * scale, 1e-5 * scale, 0.0)

    def stop_at():
        return min(P.upper - tol, _TINY) if decide else P.upper - tol

    alpha0 = _chord_slopes(tree.lo, tree.hi, tree.b)[0]
    root = tree.bound((), alpha0, np.zeros(0), stop_at())
    nodes, closed, heap, tick, clock = 1, np.inf, [], 0, False
    if root.lower >= stop_at():
        closed = root.lower
    else:
        heap.append((root.lower, tick, root))
    while heap:
        if decide and P.upper <= 0:
            break
        if nodes >= node_limit:
            break
        if time.perf_counter() - t0 > time_limit:
            clock = True
            break
        lb, _, node = heapq.heappop(heap)
        if lb >= stop_at():     # best-first: every open node is at least as high
            closed = min(closed, lb)
            heap.clear()
            break
        j = node.branch
        free = [i for i in range(len(tree.b)) if i not in dict(node.fixed)]
        keep = np.array([i != j for i in free])
        for k in tree.pieces(j):
            fixed = node.fixed + ((j, k),)
            if nodes >= node_limit:   # unbounded child: the parent's bound is valid for it
                tick += 1
                heapq.heappush(heap, (lb, tick, _parent_copy(node, fixed)))
                continue
            child = tree.bound(fixed, node.alpha[keep], node.lam, stop_at())
            nodes += 1
            if child.leaf or child.lower >= stop_at():
                closed = min(closed, child.lower)
            else:
                tick += 1
                heapq.heappush(heap, (child.lower, tick, child))
    open_min = min((h[0] for h in heap), default=np.inf)
    lower = max(crown, root.lower, min(closed, open_min))
    return P.result(lower, tol, decide, U.size, t0, nodes, clock)


def _parent_copy(node, fixed):
    # An unexplored child carries its parent's bound; it is never branched (the loop stops).
    child = _Node()
    child.fixed, child.lower, child.leaf = fixed, node.lower, False
    child.alpha, child.lam, child.branch = node.alpha, node.lam, None
    return child
