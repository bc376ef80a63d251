"""Properties of the attack-side kernels: the CNN's fused attack, ascent step, line scan and
per-patch scores, and the separable polynomial's exact l_inf attack.

Tolerances follow test_properties_kernels.py: rounding bounds derived from the
operations (eps = 2.2e-16 per operation on the sum of absolute terms), stated
where used; the fused attack is compared bit for bit because its docstring
promises the same bits as the unfused loop.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theorylab import attacks
from theorylab import testing as tt
from theorylab._kernels import cnn as kcnn
from theorylab._kernels import polynomial as kpoly
from theorylab.training import adversarial_examples

pytestmark = pytest.mark.usefixtures("one_numba_thread")

EPS = np.finfo(np.float64).eps
TINY = 1e-310  # underflow allowance, see test_properties_kernels.py


def srelu(z, q, rho):
    zp = np.maximum(z, 0.0)
    t = np.minimum(zp, rho) / rho
    return np.where(zp <= rho, rho * t ** q / q, zp - (1.0 - 1.0 / q) * rho)


def _z_tol(X, W):
    # |<w, x>| rounding for both computations, per (n, p, k, r).
    d = X.shape[2]
    return 2 * (d + 2) * EPS * np.einsum("npd,kmd->npkm", np.abs(X), np.abs(W))


@given(data=st.data())
def test_cnn_patch_scores_and_line_scan_match_numpy(data):
    model = data.draw(tt.cnn_models(), label="model")
    X, _ = data.draw(tt.patch_inputs(model, max_abs=10.0), label="X")
    Dir = data.draw(tt.matrices(X.shape[0], X.shape[1] * X.shape[2], max_abs=10.0),
                    label="D").reshape(X.shape)
    ts = np.array(data.draw(st.lists(st.floats(-3.0, 3.0), min_size=1, max_size=4), label="t"))
    q, rho, W = model.q, model.rho, model.W
    # Per-patch contributions: Fp[n, p, k] = sum_r sigma(<w_{k,r}, x_{n,p}>).  sigma is
    # 1-Lipschitz, so each term moves by at most the pre-activation's rounding.
    Z = np.einsum("npd,kmd->npkm", X, W)
    Fp = srelu(Z, q, rho).sum(axis=3)
    tol_p = (_z_tol(X, W) + (q + 4) * EPS * (np.abs(Z) + rho)).sum(axis=3)
    got = model.patch_contributions(X)
    gap = np.abs(got - Fp)
    assert np.all(gap <= tol_p + 2 * (model.m + 2) * EPS * np.abs(Fp) + TINY)
    # They add up over patches to the scores.  The two kernels form the pre-activations
    # in different GEMMs (per sample vs per chunk), so each term may differ by both
    # computations' rounding (tol_p each) plus the summation order.
    F = model.decision_function(X)
    assert np.all(np.abs(got.sum(axis=1) - F)
                  <= 2 * tol_p.sum(axis=1)
                  + 2 * (X.shape[1] * model.m + 4) * EPS * srelu(Z, q, rho).sum(axis=(1, 3)) + TINY)
    # Line scan: F(X + t D) for every t, from two GEMMs (<w, x> + t <w, d>).
    along = kcnn.scores_along(X, Dir, W, q, rho, ts)
    for i, t in enumerate(ts):
        Xt = X + t * Dir
        Zt = np.einsum("npd,kmd->npkm", Xt, W)
        Ft = srelu(Zt, q, rho).sum(axis=(1, 3))
        # <w, x> + t <w, d> vs <w, x + t d>: both within the rounding of |x| + |t||d|.
        tol = (_z_tol(np.abs(X) + abs(t) * np.abs(Dir), W) * 2
               + (q + 4) * EPS * (np.abs(Zt) + rho)).sum(axis=(1, 3)) \
            + 2 * (X.shape[1] * model.m + 2) * EPS * Ft
        assert np.all(np.abs(along[i] - Ft) <= tol + TINY), f"t={t}"


@given(data=st.data(), eps=tt.radii(10.0, min_positive=1e-290), linf=st.booleans(),
       step_scale=st.floats(0.0, 3.0))
def test_cnn_ascent_step_is_a_projected_steepest_step(data, eps, linf, step_scale):
    # Radii down to 1e-290 and iterates of any size up to eps (or O(1) when eps = 0):
    # the projection's norm is taken on rescaled rows (this property found it unscaled).
    g, _ = data.draw(tt.gradients(max_n=5, max_d=12), label="G")
    n, dd = g.shape
    P = data.draw(st.sampled_from([p for p in (1, 2, 3) if dd % p == 0]), label="P")
    G = g.reshape(n, P, dd // P)
    D = (data.draw(tt.matrices(n, dd, max_abs=eps if eps > 0 else 1.0), label="D")
         .reshape(G.shape))
    step = step_scale * eps
    out = kcnn.ascent_step(np.ascontiguousarray(D), G, step, eps, linf)
    Df, Gf, Of = D.reshape(n, -1), G.reshape(n, -1), out.reshape(n, -1)
    if linf:
        # D + step sign(G), clipped to [-eps, eps]: exact.
        assert np.array_equal(Of, np.clip(Df + step * np.sign(Gf), -eps, eps))
        return
    # l2: D + step G / ||G|| (zero rows do not move), then scaled back into the ball.
    s = np.abs(Gf).max(axis=1, keepdims=True)
    Gs = Gf / np.where(s > 0, s, 1.0)  # rows scaled to max 1: 1e-300 and 1e290 rows alike
    ns = np.sqrt((Gs ** 2).sum(axis=1, keepdims=True))
    U = Gs / np.where(ns > 0, ns, 1.0)
    V = Df + step * U
    vn = tt.lp_norms(V, 2)
    # Scale only the rows outside the ball: eps / |v| for a subnormal |v| inside it would
    # overflow (the thorough profile drew step = 2.2e-311; a reference bug, not the kernel's).
    outside = vn > eps
    scale = np.ones_like(vn)
    scale[outside] = eps / vn[outside]
    ref = V * scale[:, None]
    # A few roundings of entries of size |D| + step: (dd + 8) eps relative to that.
    tol = 4 * (dd + 8) * EPS * (np.abs(Df) + step + eps)
    assert np.all(np.abs(Of - ref) <= tol + TINY)
    assert np.all(tt.lp_norms(Of, 2) <= eps * (1 + (dd + 8) * EPS) + TINY)


@given(exponent=st.integers(-300, 300),
       v=st.lists(st.floats(1.0, 2.0), min_size=1, max_size=16), ratio=st.floats(0.01, 0.99))
def test_cnn_ascent_step_projects_tiny_and_huge_iterates(exponent, v, ratio):
    # Projection onto ||D|| <= eps is scale-equivariant: an iterate D = c v outside the
    # ball of radius eps = ratio c ||v|| comes back as ratio D, for c from 1e-300 to
    # 1e300 (where ||D||^2 itself under- or overflows).  Regression for the unscaled
    # norm found by test_cnn_ascent_step_is_a_projected_steepest_step (since fixed).
    c = 10.0 ** exponent
    D = c * np.asarray(v, dtype=np.float64)[None, None, :]
    eps = ratio * float(tt.lp_norms(D, 2)[0])
    out = kcnn.ascent_step(D, np.zeros_like(D), 0.0, eps, False)
    np.testing.assert_allclose(out, ratio * D, rtol=4 * (len(v) + 8) * EPS, atol=0)


@given(data=st.data(), eps=tt.radii(3.0), linf=st.booleans(), steps=st.integers(1, 3),
       start=st.booleans(), seed=tt.seeds())
def test_cnn_fused_attack_is_the_unfused_loop_bit_for_bit(data, eps, linf, steps, start, seed):
    model = data.draw(tt.cnn_models(max_weight=1.0), label="model")
    X, y = data.draw(tt.patch_inputs(model, max_abs=10.0), label="X, y")
    norm = np.inf if linf else 2.0
    rng = np.random.default_rng(seed)
    D0 = (attacks.sample_ball(X.shape, eps, norm, rng, X.dtype) if start
          else np.zeros_like(X))
    step = 2.5 * eps / steps
    fused = X + kcnn.ascent(X, y, model.W, model.q, model.rho, D0, steps, step, eps, linf)
    D = D0.copy()
    for _ in range(steps):
        G = kcnn.loss_and_input_gradient(X + D, y, model.W, model.q, model.rho)[2]
        D = kcnn.ascent_step(D, G, step, eps, linf)
    # The kernel's docstring: "Same bits as alternating loss_and_input_gradient and
    # ascent_step" -- so compared exactly; and the iterate stays in the ball.
    assert np.array_equal(fused, X + D)
    assert np.all(tt.lp_norms(D, norm) <= eps * (1 + (X[0].size + 8) * EPS) + TINY)
    # One step of size eps from 0 is FGM (the training module's documented identity).
    if steps == 1 and not start:
        one = adversarial_examples(model, X, y, eps, norm, steps=1)
        ref = X + attacks.fgm(model, X, y, eps, norm)
        if linf:
            assert np.array_equal(one, ref)
        else:
            # Two normalisations of the same vector, then x + delta: a few ulps each.
            tol = 8 * (X[0].size + 8) * EPS * (np.abs(X) + eps) + TINY
            assert np.all(np.abs(one - ref) <= tol)


# -- the separable polynomial's exact l_inf attack -----------------------------------

@given(data=st.data(), eps=tt.radii(3.0), seed=tt.seeds())
def test_separable_polynomial_exact_linf_attack_is_sound_and_attained(data, eps, seed):
    model = data.draw(tt.polynomial_models(forms=("separable",), max_coef=2.0), label="model")
    X = data.draw(tt.matrices(d=model.d, max_n=8, max_abs=3.0), label="X")
    y = data.draw(tt.binary_labels(X.shape[0]), label="y")
    n, d = X.shape
    C, degs, b = model.C, model.degrees, model.b
    crit, ncrit = model._critical_points()
    worst = kpoly.separable_worst_margins(X, y, C, degs, b, crit, ncrit, eps)

    def p(j, t):  # coordinate j's polynomial, plain NumPy
        return sum(C[i, j] * t ** e for i, e in enumerate(degs))

    # NumPy reference: per coordinate, the minimum of y p_j over [x_j - eps, x_j + eps] is
    # at an end or at a real root of p_j' inside (np.polynomial roots, independent of the
    # library's); the box minimum of a separable sum is the sum of those minima.
    best = np.empty((n, d))
    arg = np.empty((n, d))
    for j in range(d):
        der = np.zeros(int(degs.max()))
        der[degs - 1] = degs * C[:, j]
        r = np.polynomial.polynomial.polyroots(der) if der.any() else np.zeros(0)
        r = r[np.abs(r.imag) <= 1e-7 * (1 + np.abs(r))].real
        for i in range(n):
            lo, hi = X[i, j] - eps, X[i, j] + eps
            cand = np.concatenate([[lo, hi], r[(r > lo) & (r < hi)]])
            vals = y[i] * p(j, cand)
            best[i, j], arg[i, j] = vals.min(), cand[vals.argmin()]
    ref = y * b + best.sum(axis=1)
    # Values of size <= sum_e |C_e| (|x| + eps)^e, rounded (top + d + 4) times.  A
    # minimiser is a root of p', so a root off by delta (relative, <= 1e-6 even for a
    # near-double root found by an eigenvalue method) moves p only by
    # |p''| delta^2 / 2 <= D^2 scale delta^2 / 2 < 1e-12 scale for D <= 5.
    scale = sum(np.abs(C[i])[None, :] * (np.abs(X) + eps) ** e for i, e in enumerate(degs)).sum(
        axis=1) + abs(b)
    tol = 4 * (int(degs.max()) + d + 8) * EPS * scale + 1e-12 * scale
    assert np.all(np.abs(worst - ref) <= tol)
    # Sound: no point of the box (vertices and random points) does better than `worst`.
    rng = np.random.default_rng(seed)
    for _ in range(8):
        delta = eps * rng.choice([-1.0, 1.0], size=X.shape) * rng.random(X.shape) ** 0.25
        assert np.all(y * model.decision_function(X + delta) >= worst - tol)
    # Attained: the per-coordinate minimisers reach it (it is a minimum, not a bound).
    assert np.all(np.abs(y * model.decision_function(arg) - worst) <= 2 * tol)
    # The model's certificate is the sign of this worst margin.
    certified = model.worst_case_margin(X, y, eps, "inf") > 0
    decided = np.abs(worst) > tol
    assert np.array_equal(certified[decided], (worst > 0)[decided])
