"""Helpers shared by the lower-bound checks (``lb_*``): learners by name, robust evaluation.

This module registers no check.  The checks build every learner through
:func:`build`, by *name*, so a mutation test can swap a baseline for a
deliberately broken one through the check's params (``"purified"`` is the
purified network presented as if it were a baseline: a learner that should
make every lower-bound check fail).

Robust accuracy is measured as strongly as each model allows:

* exact worst case when the model certifies it (linear models in any norm;
  separable polynomials with M = I in linf);
* the purified network with M = I in linf (:class:`PurifiedSeparable`): the
  dense-direction attack, which is exact there (each neuron's output is
  non-decreasing in its own coordinate times w*_j, so the worst point of the
  box is x - y tau w*);
* otherwise PGD *and* the dense-direction attack (a point survives only if it
  survives both), as the fp checks do.
"""

from __future__ import annotations

import numpy as np

from theorylab import attacks
from theorylab.models import (LinearClassifier, NTKClassifier, PolynomialClassifier,
                              TwoLayerReLU)
from theorylab.models._base import BinaryModel, Capabilities
from theorylab.worlds import SparseCoding

__all__ = ["LEARNERS", "build", "soft_threshold_q", "robust_correct", "robust_curve",
           "IdentityWorld", "PurifiedSeparable",
           "purified_worst_margins", "reference", "child_seed", "loglog_slope", "tau50_bisect"]

LEARNERS = ("linear", "linear_oracle", "separable", "poly_kernel", "poly_oracle", "poly_soft",
            "ntk", "ntk_relu", "ntk_analytic", "purified")


def child_seed(seed, *tags):
    """An int seed for one purpose of one run, independent of the others."""
    return int(np.random.SeedSequence([seed, *[hash_tag(t) for t in tags]]).generate_state(1)[0])


def hash_tag(tag):
    # Stable across processes (str hash is salted): sum of code points weighted by position.
    return sum((i + 1) * ord(ch) for i, ch in enumerate(str(tag)))


def soft_threshold_q(degree):
    """q(t) = ((D + 2) t^D - D t^(D + 2)) / 2: q(+-1) = +-1, q'(+-1) = 0, a zero of order D at 0.

    The "Chebyshev-type soft threshold" of spec V6: flat at the code values
    (so perturbing an active code costs only second order) and as small as a
    degree-D power near 0 (so inactive coordinates shift by ~ tau^D).
    """
    return {degree: (degree + 2) / 2.0, degree + 2: -degree / 2.0}


def build(name, world, train, *, degree=3, m=256, n_kernel=2000, seed=0, reg=1e-3, l2=1e-4):
    """Fit (or construct) the learner ``name`` for ``world`` on the sample ``train``.

    Kernel learners (polynomial kernel, NTKs) use the first ``n_kernel`` points.
    """
    if name not in LEARNERS:
        raise ValueError(f"learner must be one of {LEARNERS}, got {name!r}")
    X, y = train.X, train.y
    Xk, yk = X[:n_kernel], y[:n_kernel]
    M = None if world.identity else world.M
    if name == "linear":
        return LinearClassifier(world.d).fit(X, y, l2=l2)
    if name == "linear_oracle":
        return LinearClassifier.oracle(world)
    if name == "separable":
        return PolynomialClassifier.separable(world.d, degree, dictionary=M).fit(X, y, l2=l2)
    if name == "poly_kernel":
        return PolynomialClassifier.kernel(world.d, degree).fit(Xk, yk, reg=reg)
    if name == "poly_oracle":
        return PolynomialClassifier.oracle(world, degree)
    if name == "poly_soft":
        return PolynomialClassifier.oracle(world, q=soft_threshold_q(degree))
    if name in ("ntk", "ntk_relu"):
        gate = "threshold" if name == "ntk" else "relu"
        return NTKClassifier.empirical(world.d, m, gate=gate, seed=seed, dictionary=M).fit(
            Xk, yk, reg=reg)
    if name == "ntk_analytic":
        return NTKClassifier.analytic(world.d).fit(Xk, yk, reg=reg)
    # The broken "baseline" of the mutation tests: the purified network in disguise.
    if world.identity:
        return PurifiedSeparable(world.w_star)
    return TwoLayerReLU.purified(world)


class PurifiedSeparable(BinaryModel):
    """The purified network of an identity-dictionary world, evaluated in O(N d).

    f(x) = sum_j sign(u_j) (|u_j| - c)_+, u_j = w*_j x_j: what
    ``TwoLayerReLU.purified(world, c=c)`` computes with a d x d weight matrix.
    Its linf worst case is certified: each term is non-decreasing in w*_j x_j,
    so the minimum over the box is at x - y eps w* (:func:`purified_worst_margins`).
    """

    kind = "PurifiedSeparable"
    capabilities = Capabilities(exact={np.inf})

    def __init__(self, w_star, c=0.5):
        self.w_star = np.asarray(w_star, dtype=np.float64)
        self.d, self.dtype, self.c = self.w_star.size, np.float64, float(c)

    def _scores(self, X):
        U = X * self.w_star
        return np.sum(np.sign(U) * np.maximum(np.abs(U) - self.c, 0.0), axis=1)

    def _loss_grad(self, X, y):
        from theorylab._kernels.relu_net import logistic
        loss, slope = logistic(self._scores(X), y)
        return loss, slope[:, None] * self.w_star * (np.abs(X * self.w_star) > self.c)

    def _score_grad(self, X):
        return self._scores(X), self.w_star * (np.abs(X * self.w_star) > self.c)

    def worst_case_margin(self, X, y, eps, p, *, check_input=True):
        if p != np.inf:
            raise ValueError("certified only in linf")
        if check_input:
            X, y = self.check_Xy(X, y)
        return purified_worst_margins(X, y, self.w_star, eps, self.c)


def evaluated_exactly(model):
    """Whether :func:`robust_correct` tries the model's exact worst case first.

    Linear models, every polynomial classifier (the kernel form then falls back to
    the attacks) and the purified separable network: the checks give these the
    larger evaluation set.
    """
    return isinstance(model, (LinearClassifier, PolynomialClassifier, PurifiedSeparable))


def robust_correct(model, X, y, eps, norm, world=None, *, pgd_steps=10):
    """Per sample: correct against the strongest attack available for ``model`` (see module doc)."""
    p = {2: 2.0, "2": 2.0, "l2": 2.0, "inf": np.inf, "linf": np.inf, np.inf: np.inf}[norm]
    if eps == 0:
        return model.margins(X, y) > 0
    if p in model.capabilities.exact:
        return model.worst_case_margin(X, y, eps, p) > 0
    ok = model.margins(X + attacks.pgd(model, X, y, eps, p, steps=pgd_steps), y) > 0
    if world is not None:
        ok &= model.margins(X + attacks.dense_direction(world, y, eps, p), y) > 0
    return ok


def robust_curve(model, X, y, grid, norm, world=None, *, pgd_steps=10):
    """Robust accuracy at each radius of ``grid`` (see :func:`robust_correct`).

    Cumulative (:func:`theorylab.attacks.cumulative_survival`): a point broken at
    a radius counts as broken at every larger one, and only survivors are attacked.
    """
    ok = attacks.cumulative_survival(
        lambda e, idx: robust_correct(model, X[idx], y[idx], e, norm, world,
                                      pgd_steps=pgd_steps), grid, X.shape[0])
    return ok.mean(axis=1)


def purified_worst_margins(X, y, w_star, eps, c=0.5):
    """Exact linf worst-case margins of the purified network with M = I, in O(N d).

    f(x) = sum_j sign(u_j) (|u_j| - c)_+ with u_j = w*_j x_j (what
    ``TwoLayerReLU.purified(world, c=c)`` computes with a d x d GEMM); its
    minimum over the box is at x - y eps w* (module docstring).
    """
    U = (X - eps * y[:, None] * w_star[None, :]) * w_star[None, :]
    return y * np.sum(np.sign(U) * np.maximum(np.abs(U) - c, 0.0), axis=1)


def reference(seed, params):
    """The robust reference network of the same-radius checks and its world.

    ``params["reference"]``: ``"fp_pipeline"`` trains (or reuses, memoised per
    process) the fp checks' clean-then-FGM network with the pipeline keys of
    ``params``; ``"purified"`` is the purified oracle (a stand-in).

    Returns
    -------
    world, net, test : SparseCoding, TwoLayerReLU, Sample
    """
    if params["reference"] == "fp_pipeline":
        from ._fp_pipeline import fp_run
        run = fp_run(seed, {k: v for k, v in params.items() if k in _FP_KEYS})
        return run.world, run.adv, run.test
    world = SparseCoding(params["d"], params["k"], noise=params.get("noise", 0.05),
                         seed=child_seed(seed, "world"))
    return world, PurifiedSeparable(world.w_star, c=params.get("c1", 0.5)), world.sample(
        params.get("n_test", 1000), child_seed(seed, "test"))


_FP_KEYS = ("d", "k", "codes", "dictionary", "noise", "width_mult", "init_scale", "c0", "c1",
            "ramp_frac", "lr", "batch", "T", "T_adv", "norm", "eps_train", "n_test")


def tau50_bisect(acc_at, grid, clean, steps=8):
    """Radius where ``acc_at(tau)`` first falls below 0.5: coarse grid, then bisection.

    Same definition as :func:`theorylab.attacks.tau50` (first crossing, linear
    interpolation) on the grid refined by ``steps`` geometric bisections of the
    bracketing interval: 2^steps times finer for len(grid) + steps evaluations.
    """
    grid = [float(g) for g in grid]
    if clean < 0.5:
        return 0.0
    lo, a_lo = 0.0, clean
    for g in grid:
        a = acc_at(g)
        if a < 0.5:
            hi, a_hi = g, a
            break
        lo, a_lo = g, a
    else:
        return float("inf")
    for _ in range(steps if lo > 0 else 0):
        mid = float(np.sqrt(lo * hi))
        a = acc_at(mid)
        if a < 0.5:
            hi, a_hi = mid, a
        else:
            lo, a_lo = mid, a
    return lo + (a_lo - 0.5) * (hi - lo) / (a_lo - a_hi)


def loglog_slope(x, y):
    """Least-squares slope of log y against log x (nan if any y is not positive and finite)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


class IdentityWorld:
    """The sparse-coding law of ``SparseCoding(d, k, codes="pm1", dictionary="identity")``
    in O(n d) memory, for very large d.

    ``SparseCoding`` stores M = I as a dense d x d matrix (8.6 GB at d = 32768).
    Here the codes are drawn as N ~ Bin(d, k/d) non-zero positions chosen
    uniformly without replacement, which is the same law as independent
    Bernoulli(k/d) masks; signs are uniform, rows with <w*, z> = 0 are redrawn,
    and the noise is N(0, sigma^2/d I).  Same distribution, not the same bits.
    """

    identity = True
    M = None  # never materialised

    def __init__(self, d, k, *, noise=0.05, seed=0):
        self.d, self.k, self.noise = int(d), float(k), float(noise)
        self.w_star = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=self.d)

    @property
    def label_direction(self):
        return self.w_star


    def sample(self, n, seed):
        from theorylab.worlds.sparse_coding import Sample
        rng = np.random.default_rng(seed)
        X = (self.noise / np.sqrt(self.d)) * rng.standard_normal((n, self.d))
        Z = np.zeros((n, self.d))
        y = np.empty(n)
        for r in range(n):
            while True:
                idx = rng.choice(self.d, size=rng.binomial(self.d, self.k / self.d),
                                 replace=False)
                signs = rng.choice(np.array([-1.0, 1.0]), size=idx.size)
                s = float(signs @ self.w_star[idx])
                if s != 0.0:
                    break
            Z[r, idx] = signs
            y[r] = np.sign(s)
        return Sample(X=X + Z, y=y, Z=Z)
