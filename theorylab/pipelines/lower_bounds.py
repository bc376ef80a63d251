"""The lower-bound learners' pipeline: every low-complexity learner by name, and the reference.

The lb checks build every learner through :func:`build`, by *name*, so a
mutation test can swap a baseline for a deliberately broken one through the
check's params (``"purified"`` is the purified network presented as if it were
a baseline: a learner that should make every lower-bound check fail).
:func:`reference` is the robust network the same-radius checks compare with:
the Feature Purification pipeline's FGM-trained network
(:func:`theorylab.pipelines.feature_purification.fp_run`) or the purified oracle.
"""

from __future__ import annotations

import numpy as np

from ..models import LinearClassifier, NTKClassifier, PolynomialClassifier, TwoLayerReLU
from ..models._base import BinaryModel, Capabilities
from ..training import adversarial_kernel, adversarial_logistic, adversarial_separable
from ..worlds import SparseCoding
from .feature_purification import PARAMETERS as _FP_PARAMETERS
from .feature_purification import fp_run

__all__ = ["LEARNERS", "ADVERSARIAL", "build", "adversarially_trained", "soft_threshold_q", "PurifiedSeparable", "purified_worst_margins",
           "reference", "child_seed", "hash_tag", "IdentityWorld"]

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


# How each learner is trained adversarially (``adversarially_trained``); the fixed rules
# (the Bayes linear rule, the oracle polynomials) have no training to strengthen.
ADVERSARIAL = {"linear": "exact adversarial logistic loss (convex, L-BFGS-B to optimality)",
               "separable": "exact inner maximisation (per-coordinate closed form), L-BFGS",
               "poly_kernel": "dual coefficients, PGD + dense examples recomputed each epoch",
               "ntk": "head V (frozen gates), PGD + dense examples recomputed each epoch",
               "ntk_relu": "head V (frozen gates), PGD + dense examples recomputed each epoch",
               "ntk_analytic": "dual coefficients, PGD + dense examples recomputed each epoch",
               "purified": "none (the mutation tests' secretly robust learner stays itself)"}


def adversarially_trained(name, model, world, train, eps, *, n_kernel=2000, n_adv=None,
                          epochs=6, steps=10, inner_iter=10, seed=0, l2=1e-4):
    """The learner ``name`` (already fitted clean: ``model``) trained adversarially at ``eps``.

    The strongest training we have for its family (:data:`ADVERSARIAL`,
    :mod:`theorylab.training.baselines`), started from a copy of the clean fit.
    Kernel machines train on the first ``n_adv`` (default all ``n_kernel``) points
    of their support set.  Returns ``(model, history)``; ``model`` is a new object.
    """
    import copy

    if name not in ADVERSARIAL:
        raise ValueError(f"name must be one of {sorted(ADVERSARIAL)}, got {name!r}")
    if name == "purified":
        return model, None
    model = copy.deepcopy(model)
    X, y = train.X, train.y
    if name == "linear":
        return model, adversarial_logistic(model, X, y, eps, l2=l2)
    if name == "separable":
        if not world.identity:
            raise ValueError("separable adversarial training needs the identity dictionary")
        return model, adversarial_separable(model, X, y, eps, l2=l2, max_iter=200)
    n = min(n_kernel, X.shape[0]) if n_adv is None else min(n_adv, n_kernel, X.shape[0])
    return model, adversarial_kernel(model, X[:n], y[:n], eps, attack=("pgd", "dense"),
                                     world=world, epochs=epochs, steps=steps,
                                     inner_iter=inner_iter, l2=l2, seed=seed)


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

    def weight_arrays(self):
        return {"w_star": self.w_star, "c": np.float64(self.c)}

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
        run = fp_run(seed, {k: v for k, v in params.items() if k in _FP_PARAMETERS})
        return run.world, run.adv, run.test
    world = SparseCoding(params["d"], params["k"], noise=params.get("noise", 0.05),
                         seed=child_seed(seed, "world"))
    return world, PurifiedSeparable(world.w_star, c=params.get("c1", 0.5)), world.sample(
        params.get("n_test", 1000), child_seed(seed, "test"))


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
