"""Structural properties: symmetry, smoothness, positive semidefiniteness, rotation invariance.

* the symmetric threshold network (and an odd separable polynomial) is odd, exactly;
* the smoothed ReLU is C1 at 0 and at rho, with the stated constants;
* the analytic and empirical NTK Gram matrices are PSD, and the empirical NTK
  converges to the analytic one as the width grows (Hoeffding bands);
* l2 training commutes with rotations of the input space (identity vs
  orthogonal dictionary give the same trajectory in the z-basis).
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theorylab import attacks
from theorylab import testing as tt
from theorylab._kernels import cnn as kcnn
from theorylab.models import NTKClassifier, TwoLayerReLU
from theorylab.training import train
from theorylab.worlds import SparseCoding

pytestmark = pytest.mark.usefixtures("one_numba_thread")

EPS = np.finfo(np.float64).eps


# -- oddness ---------------------------------------------------------------------------

@given(data=st.data(), eps=tt.radii(10.0), norm=tt.norms())
def test_symmetric_network_is_odd_bit_for_bit(data, eps, norm):
    # f(-x) = -f(x) for the symmetric pair sum_i sign(u_i)(|u_i| - b_i)_+.  Negation is
    # exact and every operation (GEMM included) commutes with it, so the identities
    # hold bit for bit: scores are odd, the loss is invariant under (x, y) -> (-x, -y),
    # the input gradient and the FGM step are odd.
    net = data.draw(tt.two_layer_nets(max_d=12, max_m=8), label="net")
    X = data.draw(tt.matrices(d=net.d, max_n=10), label="X")
    y = data.draw(tt.binary_labels(X.shape[0]), label="y")
    assert np.array_equal(net.decision_function(-X), -net.decision_function(X))
    assert np.array_equal(net.loss(-X, -y, reduction="none"), net.loss(X, y, reduction="none"))
    assert np.array_equal(net.input_gradient(-X, -y), -net.input_gradient(X, y))
    assert np.array_equal(attacks.fgm(net, -X, -y, eps, norm), -attacks.fgm(net, X, y, eps, norm))
    # Odd separable polynomials (odd powers, no intercept) are odd in the same exact sense.
    poly = data.draw(tt.polynomial_models(net.d, forms=("separable",), intercept=False),
                     label="poly")
    Xp = np.clip(X, -30, 30)
    assert np.array_equal(poly.decision_function(-Xp), -poly.decision_function(Xp))


# -- the smoothed ReLU -------------------------------------------------------------------

@given(q=st.integers(2, 8), rho=st.floats(1e-3, 10.0), h=st.floats(1e-12, 0.5),
       z=st.lists(st.floats(-3.0, 3.0), min_size=1, max_size=40))
def test_smoothed_relu_is_c1_at_both_joins(q, rho, h, z):
    s = lambda v: kcnn.smoothed_relu(np.asarray(v, dtype=np.float64), q, rho)  # noqa: E731
    ds = lambda v: kcnn.smoothed_relu_derivative(np.asarray(v, dtype=np.float64), q, rho)  # noqa: E731
    # Values at the joins: sigma(0) = 0, sigma(rho) = rho / q from both pieces (to rounding).
    assert s([0.0])[0] == 0.0 and ds([0.0])[0] == 0.0
    assert s([rho])[0] == pytest.approx(rho / q, rel=4 * EPS)
    assert ds([rho])[0] == 1.0
    # One-sided slopes: sigma'(rho (1 - h)) = (1 - h)^(q-1) >= 1 - (q - 1) h; 1 above rho;
    # sigma'(h rho) = h^(q-1) <= h; 0 below 0: the derivative is continuous at both joins,
    # with modulus (q - 1)/rho (so C1, not C2: sigma'' jumps by (q - 1)/rho at rho).
    a, b, c, d = ds([rho * (1 - h), rho * (1 + h), h * rho, -h * rho])
    assert 1.0 - (q - 1) * h - 4 * q * EPS <= a <= 1.0 and b == 1.0
    assert 0.0 <= c <= h * (1 + 4 * q * EPS) and d == 0.0
    # Values: 1-Lipschitz across each join (both pieces meet).
    v = s([rho * (1 - h), rho, rho * (1 + h), -h * rho, 0.0, h * rho])
    assert abs(v[2] - v[0]) <= 2 * h * rho * (1 + 1e-12) + 8 * EPS * rho
    assert abs(v[5] - v[3]) <= h * rho * (1 + 1e-12)
    # sigma' is the derivative of sigma: central differences at random points are within
    # L delta / 2 (L = (q - 1)/rho, the Lipschitz constant of sigma') plus rounding.
    zz = np.asarray(z) * rho
    delta = 1e-4 * rho
    num = (s(zz + delta) - s(zz - delta)) / (2 * delta)
    assert np.all(np.abs(num - ds(zz)) <= (q - 1) / rho * delta / 2
                  + 8 * EPS * (np.abs(zz) + 2 * rho) / delta)
    # Convex and nondecreasing: sigma' in [0, 1] and nondecreasing, exactly (rounding is
    # monotone); sigma nondecreasing up to the join's rounding.
    zs = np.sort(np.concatenate([zz, [0.0, rho]]))
    dz = ds(zs)
    assert np.all((dz >= 0) & (dz <= 1)) and np.all(np.diff(dz) >= 0)
    assert np.all(np.diff(s(zs)) >= -4 * EPS * rho)


# -- neural tangent kernels ----------------------------------------------------------------

def _min_eig(K):
    return float(np.linalg.eigvalsh((K + K.T) / 2).min())


@given(X=tt.matrices(max_n=12, max_d=8, max_abs=1e3), data=st.data())
def test_ntk_gram_matrices_are_positive_semidefinite(X, data):
    n, d = X.shape
    K = NTKClassifier.analytic(d).gram(X)
    # Exact arithmetic gives a PSD matrix (an arc-cosine kernel times a linear one).  In
    # floating point cos theta carries ~2(d + 5) eps, and acos near +-1 turns that into
    # an angle error up to pi sqrt((d + 5) eps) (1/2-Hoelder): entries move by at most
    # |x||x'| times that / (2 pi), so by Weyl lambda_min >= -(that) * sum |x|^2
    # (= 2 tr K) minus eigvalsh's own n eps ||K||.
    dtheta = math.pi * math.sqrt((d + 5) * EPS)
    tr = float(np.trace(K))
    tol = dtheta / (2 * math.pi) * 2 * tr + 8 * n * EPS * max(tr, 1e-300)
    assert _min_eig(K) >= -tol
    # The frozen-gate (empirical) Gram is an explicit feature Gram: PSD to rounding.
    net = data.draw(tt.ntk_models(d, forms=("empirical",)), label="ntk")
    Ke = net.gram(X)
    tre = float(np.trace(Ke))
    assert _min_eig(Ke) >= -8 * (n + d + net.m) * EPS * max(tre, 1e-300)


WIDTHS = (64, 1024, 16384)


@given(X=tt.matrices(max_n=6, max_d=6, max_abs=10.0), seed=tt.seeds())
def test_empirical_ntk_converges_to_the_analytic_kernel(X, seed):
    # K_m(x, x') = <x, x'> (1/m) sum_i 1{w_i x > 0} 1{w_i x' > 0} with Gaussian w_i is an
    # average of m Bernoulli(p) with p = (pi - theta)/(2 pi), i.e. K(x, x') / <x, x'>.
    # Hoeffding over the n^2 entries and the three widths: |K_m - K| <= |<x, x'>| t_m,
    # t_m = sqrt(log(2 n^2 * 3 / 1e-9) / (2 m)), fails with probability <= 1e-9.  The band
    # shrinks 4x per 16x width: that is the convergence being checked.
    n, d = X.shape
    K = NTKClassifier.analytic(d).gram(X)
    S = np.abs(X @ X.T)
    Sabs = np.abs(X) @ np.abs(X).T  # rounding of <x, x'> is <= 2(d + 2) eps Sabs
    rnd = 4 * (d + 2) * EPS * Sabs
    for m in WIDTHS:
        Km = NTKClassifier.empirical(d, m, gate="relu", seed=seed).gram(X)
        t = math.sqrt(math.log(2 * n * n * len(WIDTHS) / 1e-9) / (2 * m))
        # + rounding of both computations (the analytic angle error as above).
        tol = (S + rnd) * t + Sabs * math.sqrt((d + 5) * EPS) + rnd + 1e-300
        assert np.all(np.abs(Km - K) <= tol), f"width {m}"


# -- rotation invariance of l2 training ----------------------------------------------------

@given(d=tt.sizes(1, 12), data=st.data(), seed=tt.seeds(),
       adversarial=st.sampled_from((None, "fgm")), steps=st.integers(1, 6),
       lr=st.floats(0.01, 1.0), eps=st.floats(0.0, 1.0),
       rule=st.sampled_from(("max", "norm", "fixed")), c=st.floats(0.0, 1.5),
       schedule=st.one_of(st.none(), st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 2.0),
                                               st.integers(1, 6))))
def test_l2_training_is_rotation_equivariant(d, data, seed, adversarial, steps, lr, eps, rule,
                                             c, schedule):
    # Gradient descent on the logistic loss, the l2 FGM step and every threshold rule
    # (with the dictionary given to the model) commute with an orthogonal change of
    # input basis: feeding X M^T and W0 M^T gives W_t M^T at every step.  Noise >= 0.01
    # keeps pre-activations off the thresholds (a tie within rounding has probability
    # ~1e-12 per gate); rounding (~d eps per step) grows by at most the step map's
    # Lipschitz constant (<= 1 + lr d / 4 per step for |x| <= ~3) over <= 6 steps: far below
    # the 1e-8 relative tolerance.  PGD training is excluded on purpose: its random starts
    # are drawn in the input basis, equal in law but not per draw.
    k = data.draw(tt.sparsities(d), label="k")
    noise = data.draw(st.floats(0.01, 0.5), label="noise")
    wid = SparseCoding(d, k, noise=noise, seed=seed)
    wrot = SparseCoding(d, k, noise=noise, dictionary="orthogonal", seed=seed)
    s = wid.sample(data.draw(tt.sizes(1, 40), label="n"), seed)
    m = data.draw(tt.sizes(1, 8), label="m")
    a = TwoLayerReLU(d, m, threshold=rule, c=c, init_scale=data.draw(st.floats(0.01, 1.0)),
                     seed=seed)
    b = TwoLayerReLU(d, m, threshold=rule, c=c, dictionary=wrot.M, W=a.W @ wrot.M.T)
    traj = {}
    for name, model, world, X in (("id", a, wid, s.X), ("rot", b, wrot, s.X @ wrot.M.T)):
        rec = traj[name] = []
        train(model, world, steps=steps, lr=lr, data=(X, s.y), adversarial=adversarial,
              eps=eps, norm=2, schedule=schedule, log_every=1, eval_size=1, seed=seed,
              callback=lambda step, mdl, _r, rec=rec: rec.append(mdl.W.copy()))
    assert len(traj["id"]) == len(traj["rot"]) == steps
    for Wa, Wb in zip(traj["id"], traj["rot"]):
        np.testing.assert_allclose(Wb @ wrot.M, Wa, rtol=0,
                                   atol=1e-8 * (1.0 + np.abs(Wa).max()))
