"""Properties of the attacks: closed-form FGM, PGD feasibility, exact attacks on linear rules.

Every comparison below is exact (bitwise) or carries a rounding bound stated
next to it; nothing here is statistical.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theorylab import attacks
from theorylab import testing as tt
from theorylab._validation import check_norm
from theorylab.models import LinearClassifier

pytestmark = pytest.mark.usefixtures("one_numba_thread")

EPS = np.finfo(np.float64).eps
TINY = 1e-310  # underflow allowance, see test_properties_kernels.py
# Gradients for the closed-form properties: every row kind, including zero rows,
# 1e-30 and 1e-300 rows and 1e290 rows; (N, P, d) shapes for patch models.
GRADIENTS = tt.gradients(max_n=6, max_d=24)
# Radii down to 1e-290: the largest entry of an l2 step, eps / sqrt(d), stays a
# normal float, so the norm of the step is still accurate to rounding.
RADII = tt.radii(1e3, min_positive=1e-290)


def _as_patches(G, data):
    # Optionally view rows as (P, d') patches: norms are per sample over all of them.
    n, d = G.shape
    P = data.draw(st.sampled_from([p for p in (1, 2, 3, 4) if d % p == 0]), label="P")
    return G.reshape(n, P, d // P)


def _dual(G, q):
    return tt.lp_norms(G, q)


@given(g=GRADIENTS, eps=RADII, norm=tt.norms(aliases=True), data=st.data())
def test_steepest_ascent_has_radius_eps_and_attains_the_dual_norm(g, eps, norm, data):
    G, kinds = g
    G = _as_patches(G, data)
    p = check_norm(norm)
    delta = attacks.steepest_ascent(G, eps, norm)
    assert delta.shape == G.shape and np.isfinite(delta).all()
    flat, Gf = delta.reshape(len(G), -1), G.reshape(len(G), -1)
    zero = ~Gf.any(axis=1)
    assert [k == "zero" for k in kinds] == zero.tolist()
    # Zero gradient: zero perturbation (the documented policy), exactly.
    assert not flat[zero].any()
    nz = ~zero
    dd = Gf.shape[1]
    r = tt.lp_norms(flat[nz], p)
    if p == 2.0:
        # eps u / ||u|| then a norm: (d + 8) eps relative rounding at most.
        np.testing.assert_allclose(r, eps, rtol=(dd + 8) * EPS, atol=0)
    else:
        # linf: eps sign(g) and l1: eps on one coordinate are exact.
        assert np.all(r == eps)
    # <delta, g> = eps ||g||_q, q dual; checked on g / max|g| (same statement divided by
    # a positive constant) so that 1e290 rows times eps = 1e3 cannot overflow the sum.
    # All products are >= 0: the sum is accurate to (d + 8) eps relative.
    s = np.abs(Gf[nz]).max(axis=1, keepdims=True)
    Gs = Gf[nz] / s
    np.testing.assert_allclose((flat[nz] * Gs).sum(axis=1), eps * _dual(Gs, tt.DUAL[p]),
                               rtol=(2 * dd + 8) * EPS, atol=TINY)
    if zero.any():
        with pytest.raises(ValueError, match="zero gradient"):
            attacks.steepest_ascent(G, eps, norm, zero_grad="raise")
    else:
        assert np.array_equal(attacks.steepest_ascent(G, eps, norm, zero_grad="raise"), delta)


@given(g=GRADIENTS, eps=RADII, norm=tt.norms())
def test_steepest_ascent_is_equivariant_to_the_sign_of_g(g, eps, norm):
    # Negation is exact in floating point and every step of the formula commutes with
    # it (argmax of |g| included), so the identity holds bit for bit.
    G, _ = g
    assert np.array_equal(attacks.steepest_ascent(-G, eps, norm),
                          -attacks.steepest_ascent(G, eps, norm))


@given(g=GRADIENTS, eps=RADII, norm=tt.norms(), data=st.data())
def test_steepest_ascent_is_exactly_invariant_to_power_of_two_scaling(g, eps, norm, data):
    # Multiplying by 2^e is exact while no entry leaves the normal range, and then
    # g / max|g| is the same real number, so delta is the same bits.
    G, _ = g
    nonzero = np.abs(G[G != 0])
    lo, hi = -1000, 1000
    if nonzero.size:
        lo = math.ceil(math.log2(np.finfo(float).tiny) - math.log2(nonzero.min()))
        hi = math.floor(math.log2(np.finfo(float).max) - math.log2(nonzero.max())) - 1
    e = data.draw(st.integers(max(lo, -1000), min(hi, 1000)), label="exponent")
    c = 2.0 ** e
    assert np.array_equal(attacks.steepest_ascent(c * G, eps, norm),
                          attacks.steepest_ascent(G, eps, norm))


@given(g=tt.gradients(max_n=6, max_d=24, kinds=("normal", "zero", "sparse", "tiny")),
       eps=RADII, norm=tt.norms(),
       c=st.one_of(st.just(1e-30), st.just(1e30),
                   st.floats(-30.0, 30.0).map(lambda u: 10.0 ** u)))
def test_steepest_ascent_is_invariant_to_positive_scaling(g, eps, norm, c):
    # Any positive scale c in [1e-30, 1e30] (rows as small as 1e-33 become 1e-63: no
    # underflow).  c g rounds each entry once, so:
    # l2 moves by a few ulps of eps; linf is exact (signs survive); l1 may pick another
    # coordinate only if rounding made it tie the largest, so it still attains eps max|g|.
    G, _ = g
    p = float(norm)
    a = attacks.steepest_ascent(G, eps, norm)
    b = attacks.steepest_ascent(c * G, eps, norm)
    if eps == 0:
        assert not a.any() and not b.any()
        return
    if p == 2.0:
        np.testing.assert_allclose(b, a, rtol=0, atol=8 * (G.shape[1] + 4) * EPS * eps)
    elif p == np.inf:
        assert np.array_equal(a, b)
    else:
        rows = np.flatnonzero(G.any(axis=1))
        j = np.abs(b[rows]).argmax(axis=1)
        gmax = np.abs(G[rows]).max(axis=1)
        assert np.all(np.abs(G[rows, j]) >= gmax * (1 - 4 * EPS))
        assert np.all(b[rows, j] == eps * np.sign(G[rows, j]))
        assert np.count_nonzero(b) == rows.size and not b[~G.any(axis=1)].any()


# -- FGM on models ---------------------------------------------------------------

@st.composite
def models_and_inputs(draw, max_abs=10.0):
    """A model of any kind with matching inputs (X, y); rows of X may be zero."""
    kind = draw(st.sampled_from(("two_layer", "linear", "cnn", "polynomial", "ntk")))
    if kind == "cnn":
        model = draw(tt.cnn_models(max_weight=1.0), label="model")
        X, y = draw(tt.patch_inputs(model, max_abs=max_abs), label="X, y")
        return model, X, y
    if kind == "two_layer":
        model = draw(tt.two_layer_nets(max_d=12, max_weight=1.0), label="model")
    elif kind == "linear":
        model = draw(tt.linear_models(max_d=12, max_weight=10.0), label="model")
    elif kind == "polynomial":
        model = draw(tt.polynomial_models(max_coef=1.0), label="model")
    else:
        model = draw(tt.ntk_models(), label="model")
    X = draw(tt.matrices(d=model.d, max_n=8, max_abs=max_abs), label="X")
    return model, X, draw(tt.binary_labels(X.shape[0]), label="y")


@given(mxy=models_and_inputs(), eps=tt.radii(10.0), norm=tt.norms(aliases=True))
def test_fgm_is_the_steepest_ascent_step_of_the_model_loss(mxy, eps, norm):
    model, X, y = mxy
    p = check_norm(norm)
    delta = attacks.fgm(model, X, y, eps, norm)
    G = model.input_gradient(X, y)
    # The same closed form on the model's own gradient, bit for bit; a model's compiled
    # l2 step (TwoLayerReLU) sums the squares in another order: each entry is
    # eps u_j / ||u|| with u = g / max|g| on both paths, and the two norms (and the
    # compiled path's projection) differ by (d + 4) eps relative at most.
    ref = attacks.steepest_ascent(G, eps, norm)
    if p == 2.0 and "fgm" in model.capabilities.compiled:
        np.testing.assert_allclose(delta, ref, rtol=(2 * G[0].size + 16) * EPS, atol=TINY)
    else:
        assert np.array_equal(delta, ref)
    flat, Gf = delta.reshape(len(X), -1), G.reshape(len(X), -1)
    zero = ~Gf.any(axis=1)
    assert not flat[zero].any()  # zero gradient (e.g. closed gates): zero step
    r = tt.lp_norms(flat[~zero], p)
    np.testing.assert_allclose(r, eps, rtol=(Gf.shape[1] + 8) * EPS, atol=0)
    # First order, the step raises the loss at rate eps ||g||_q: <delta, g> = eps ||g||_q.
    np.testing.assert_allclose((flat * Gf).sum(axis=1), eps * tt.lp_norms(Gf, tt.DUAL[p]),
                               rtol=(2 * Gf.shape[1] + 8) * EPS, atol=TINY)


@given(model=tt.linear_models(max_d=12, max_weight=10.0, intercept=False, min_abs=1e-3),
       data=st.data(), eps=tt.radii(10.0), norm=tt.norms(),
       c=st.one_of(st.just(1e-30), st.floats(-30.0, 30.0).map(lambda u: 10.0 ** u)))
def test_fgm_on_a_linear_model_ignores_the_scale_of_w(model, data, c, eps, norm):
    # For f = <w, x> the loss gradient is slope(x) w with slope of the sign of -y, so
    # the FGM step is -y times the steepest step of w, whatever positive scale w has
    # (c = 1e-30 gives gradients ~1e-30): one rounding of c w and of the slope.
    # Entries of w are 0 or >= 1e-3, so c w stays normal; rows whose slope is so
    # small (|f| > ~700) that slope * w leaves the normal range are excluded: there
    # underflow, not the attack, decides which entries survive.
    X = data.draw(tt.matrices(d=model.d, max_n=8, max_abs=10.0), label="X")
    y = data.draw(tt.binary_labels(X.shape[0]), label="y")
    scaled = LinearClassifier(model.d, w=c * model.w)
    a = attacks.fgm(model, X, y, eps, norm)
    b = attacks.fgm(scaled, X, y, eps, norm)
    tiny = np.finfo(np.float64).tiny

    def normal_rows(m):
        G = np.abs(m.input_gradient(X, y))
        return np.all((G >= tiny) == (model.w != 0)[None, :], axis=1)

    live = normal_rows(model) & normal_rows(scaled)
    tol = 8 * (model.d + 4) * EPS * eps
    np.testing.assert_allclose(b[live], a[live], rtol=0, atol=tol)
    # Where w != 0 the step is -y eps w / ||w|| (l2), -y eps sign(w) (linf), or eps on
    # a coordinate of largest |w_j| (l1), independently of x.
    if model.w.any() and norm != 1.0:
        ref = LinearClassifier(model.d, w=model.w).worst_perturbation(y, eps, norm)
        np.testing.assert_allclose(a[live], ref[live], rtol=0, atol=tol)


# -- PGD -------------------------------------------------------------------------

@given(mxy=models_and_inputs(), eps=tt.radii(10.0), norm=tt.norms(),
       steps=st.integers(1, 4), random_start=st.booleans(), restarts=st.integers(1, 2),
       step_scale=st.one_of(st.none(), st.floats(0.0, 3.0)), seed=tt.seeds())
def test_pgd_stays_in_the_ball_and_never_lowers_the_loss(mxy, eps, norm, steps, random_start,
                                                         restarts, step_scale, seed):
    model, X, y = mxy
    restarts = restarts if random_start else 1
    step = None if step_scale is None else step_scale * eps
    kw = dict(steps=steps, random_start=random_start, restarts=restarts, step_size=step,
              seed=seed)
    delta = attacks.pgd(model, X, y, eps, norm, **kw)
    assert delta.shape == X.shape and np.isfinite(delta).all()
    # Every iterate is projected onto the ball: ||delta||_p <= eps up to the rounding
    # of the projection ((d + 8) eps relative; exact for linf).
    r = tt.lp_norms(delta, norm)
    assert np.all(r <= eps * (1 + (delta[0].size + 8) * EPS) + TINY)
    if eps == 0:
        assert not delta.any()
    # The returned iterate is the best seen, and the start (the clean point) is seen:
    # the loss cannot go down.  Recomputing a loss in another batch layout changes it by
    # reassociation only: <= 200 eps * sum|terms| <= 1e-8 relative for |x| <= 10,
    # |weights| <= 10 and d, m <= 16 (sum|terms| <= 2e4 |f| or the loss is ~log 2).
    clean = model.loss(X, y, reduction="none")
    adv = model.loss(X + delta, y, reduction="none")
    assert np.all(adv >= clean * (1 - 1e-8) - 1e-300)
    # Same seed, same bits.
    assert np.array_equal(delta, attacks.pgd(model, X, y, eps, norm, **kw))


@given(model=tt.linear_models(max_d=12, max_weight=10.0), data=st.data(),
       eps=tt.radii(10.0), norm=tt.norms(), random_start=st.booleans(), seed=tt.seeds())
def test_linear_model_attacks_are_ordered_and_the_exact_attack_is_certified(
        model, data, eps, norm, random_start, seed):
    X = data.draw(tt.matrices(d=model.d, max_n=12, max_abs=10.0), label="X")
    y = data.draw(tt.binary_labels(X.shape[0]), label="y")
    n, d = X.shape
    p = float(norm)
    # The exact worst case of a linear rule: y f(x) - eps ||w||_q (q dual), in NumPy.
    qn = float(tt.lp_norms(model.w[None, :], tt.DUAL[p])[0])  # scaled: no underflow
    margin = y * (X @ model.w + model.b)
    worst = margin - eps * qn
    exact_loss = np.logaddexp(0.0, -worst)
    # Margins carry <= 2(d + 3) eps sum|terms| of rounding; the dual norm d eps relative.
    tol_m = 2 * (d + 3) * EPS * (np.abs(X) @ np.abs(model.w) + abs(model.b)) \
        + 2 * (d + 2) * EPS * eps * qn
    tol_loss = tol_m * 1.01 + 4 * EPS * exact_loss

    clean = model.loss(X, y, reduction="none")
    fgm_loss = model.loss(X + attacks.fgm(model, X, y, eps, norm), y, reduction="none")
    pgd_delta = attacks.pgd(model, X, y, eps, norm, steps=20, random_start=random_start,
                            seed=seed)
    pgd_loss = model.loss(X + pgd_delta, y, reduction="none")
    # clean <= PGD <= exact (no attack beats the worst case), up to rounding.
    assert np.all(pgd_loss >= clean - tol_loss)
    assert np.all(pgd_loss <= exact_loss + tol_loss)
    assert np.all(fgm_loss <= exact_loss + tol_loss)
    # FGM *is* the worst case of a linear rule wherever the gradient is non-zero; a
    # gradient that underflows to 0 (margin > ~745) gets the zero step by policy.
    live = model.input_gradient(X, y).any(axis=1)
    _close = np.abs(fgm_loss - exact_loss) <= tol_loss
    assert np.all(_close[live])
    assert np.all(fgm_loss[~live] == clean[~live])
    # From 0, 20 steps of 2.5 eps / 20 reach the worst case exactly (8 steps to the
    # sphere, then the same vertex) for every norm: PGD == FGM there too.
    if not random_start:
        assert np.all((np.abs(pgd_loss - exact_loss) <= tol_loss)[live])

    # The exact robust accuracy is the fraction of margins above eps ||w||_q; rows within
    # rounding of the boundary may be decided either way.
    certified = model.worst_case_margin(X, y, eps, norm) > 0
    decided = np.abs(worst) > tol_m
    assert np.array_equal(certified[decided], (worst > 0)[decided])
    acc = attacks.robust_accuracy(model, X, y, eps, norm, attack="exact")
    lo = np.sum((worst > tol_m)) / n
    assert lo <= acc <= lo + np.sum(~decided) / n
    # A certified point survives every attack: exact <= PGD <= clean accuracy per point.
    pgd_correct = y * model.decision_function(X + pgd_delta) > 0
    assert np.all(pgd_correct[certified & decided])
    # PGD's loss is at least the clean loss, so a point PGD leaves correct was correct
    # (the loss is decreasing in the margin), up to the margin's rounding.
    assert np.all(margin[pgd_correct] > -tol_m[pgd_correct])
