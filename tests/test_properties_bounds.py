"""Properties: the derived bounds of theorylab.theory hold on the worlds they describe.

* spec 3.3(ii): every linear rule's l2 robust accuracy is at most (k + sigma^2)/(d tau^2)
  (Markov) -- checked on a large sample with a binomial slack;
* spec 1.3: Pr[|<w*, z>| <= 1] is below the explicit O(1/sqrt(k)) bound of
  theory.small_margin_bound, and the world's sampler follows theory's exact law;
* spec 3.3(iii): the purified network is robust within its certified radius on
  every sample, under PGD, FGM and the dense-direction attack, and the radius is
  tight (an explicit attack just beyond it succeeds).

Statistical checks use one-sided or two-sided binomial tails at level 1e-9 per
example: over the ~1000 examples of the thorough profile a false alarm has
probability below 1e-6.
"""

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from theorylab import attacks, theory
from theorylab import testing as tt
from theorylab.models import LinearClassifier, TwoLayerReLU
from theorylab.worlds import SparseCoding

pytestmark = pytest.mark.usefixtures("one_numba_thread")

ALPHA = 1e-9  # false-alarm probability of each statistical check


def _p_zero_code(world):
    # P(<w*, z> = 0) before resampling: exact for +-1 codes (theory), and P(z = 0) for
    # continuous codes (a non-zero continuous sum vanishes with probability 0) -- unless
    # code_low = 1, where U[1, 1] magnitudes are +-1 codes again, ties included.
    if world.codes == "pm1" or world.code_low == 1.0:
        return theory.tie_probability(world.k, world.d)
    return (1.0 - world.k / world.d) ** world.d


@st.composite
def linear_rules(draw, world):
    """Any linear rule w (no intercept): random, the Bayes direction, one atom, or a mix."""
    kind = draw(st.sampled_from(("gaussian", "oracle", "atom", "mixture", "sparse")))
    rng = np.random.default_rng(draw(tt.seeds(), label="w seed"))
    d = world.d
    if kind == "gaussian":
        w = rng.standard_normal(d)
    elif kind == "oracle":
        w = world.label_direction.copy()
    elif kind == "atom":
        w = world.M[:, draw(st.integers(0, d - 1))].copy()
    elif kind == "mixture":
        w = world.label_direction + draw(st.floats(0.0, 10.0)) * rng.standard_normal(d)
    else:
        w = np.where(rng.random(d) < 0.1, rng.standard_normal(d), 0.0)
    if not w.any():
        w[0] = 1.0
    return w * draw(st.floats(1e-3, 1e3), label="scale")


@given(world=tt.worlds(max_d=512), data=st.data(), target=st.floats(0.02, 0.9),
       seed=tt.seeds())
def test_every_linear_rule_obeys_the_markov_robustness_bound(world, data, target, seed):
    w = data.draw(linear_rules(world), label="w")
    sigma, d, k = world.noise, world.d, world.k
    m2 = theory.code_second_moment(world.codes, world.code_low)
    p0 = _p_zero_code(world)
    # Choose tau so that the (tie-corrected) bound equals `target`: never vacuous.
    tau = math.sqrt((k * m2 + sigma ** 2) / (d * target * (1.0 - p0)))
    bound = theory.linear_robust_bound(k, d, tau, sigma=sigma, codes=world.codes,
                                       code_low=world.code_low)
    # theory's formula is the spec's (k m2 + sigma^2) / (d tau^2), to rounding.
    assert bound == pytest.approx(min(1.0, (k * m2 + sigma ** 2) / (d * tau ** 2)), rel=1e-12)
    # Tie resampling conditions on <w*, z> != 0: E[<u, x>^2 | S != 0] <= E<u, x>^2 / P(S != 0).
    p_max = min(1.0, bound / (1.0 - p0))
    n = 1000  # the binomial slack below is exact for any n; 1000 keeps d = 512 cheap
    s = world.sample(n, seed)
    robust = LinearClassifier(d, w=w).worst_case_margin(s.X, s.y, tau, 2) > 0
    # If the true robust accuracy is <= p_max, the count is stochastically below
    # Bin(n, p_max): it exceeds the 1 - 1e-9 quantile with probability <= 1e-9.
    assert robust.sum() <= scipy.stats.binom.isf(ALPHA, n, p_max)


@given(d=tt.dimensions(512), data=st.data())
def test_small_margins_are_below_the_explicit_anticoncentration_bound(d, data):
    k = data.draw(tt.sparsities(d), label="k")
    # Exact law (theory.margin_pmf) against the explicit O(1/sqrt(k)) bound
    # exp(-k/8) + 4/sqrt(pi k): deterministic, no slack.
    p_un = theory.small_margin_probability(k, d, conditioned=False)
    assert 0.0 <= p_un <= theory.small_margin_bound(k, conditioned=False)
    p_c = theory.small_margin_probability(k, d)
    assert p_c <= theory.small_margin_bound(k, d) + 1e-15
    # O(1/sqrt(k)) with the bound's explicit constant: sup_k sqrt(k) exp(-k/8) = 2/sqrt(e).
    assert math.sqrt(k) * p_un <= 2 / math.sqrt(math.e) + 4 / math.sqrt(math.pi)
    values, probs = theory.margin_pmf(k, d)
    assert abs(probs.sum() - 1.0) < 1e-12 and np.all(probs >= 0)


@given(world=tt.worlds(max_d=512, codes=("pm1",), noise=st.just(0.0),
                      dictionaries=("identity",)), seed=tt.seeds(), t=st.sampled_from((0, 1, 2, 3)))
def test_world_margins_follow_the_exact_law(world, seed, t):
    # (The dictionary does not touch z or the labels; identity skips an n x d x d GEMM.)
    # The sampler's margins <w*, z> against theory's exact conditioned law: the count of
    # |S| <= t among n draws must lie in the central 1 - 1e-9 range of Bin(n, p).
    n = 3000
    S = world.sample(n, seed).Z @ world.w_star
    p = theory.small_margin_probability(world.k, world.d, t)
    count = int(np.sum(np.abs(S) <= t + 1e-9))
    lo = scipy.stats.binom.ppf(ALPHA / 2, n, p)
    hi = scipy.stats.binom.isf(ALPHA / 2, n, p)
    assert lo <= count <= hi
    assert not np.any(np.abs(S) < 0.5)  # ties resampled: no zero margin survives


# -- the purified network's certified radius (spec 3.3(iii)) --------------------------

def certified_radius(S, N, c, norm, world):
    """Per-sample radius within which the purified network provably keeps its label.

    Noise-free, unit scale: u_j = w*_j <M_j, x> is +-1 on the N active atoms and 0
    elsewhere; each term sign(u)(|u| - c)_+ is 1-Lipschitz and an inactive one moves
    only after |e_j| > c, by (|e_j| - c)_+ <= e_j^2 / (4c).  The label survives while the
    largest possible decrease stays below y f = (1 - c)|S|.

    l2: the decrease is <= sqrt(N) tau for tau <= 2c sqrt(N), else <= cN + tau^2/(4c);
    so r = (1 - c)|S|/sqrt(N) (theory.purified_radius with k = N, margin = |S|) when
    (1 - c)|S| <= 2cN (always for c >= 1/3), else 2 sqrt(c((1 - c)|S| - cN)).
    linf: per atom |<M_j, delta>| <= ||M_j||_1 tau; below c / ||M_j||_1 nothing opens,
    and the active atoms lose <= N tau: r = min(c, (1 - c)|S|/N) / max_j ||M_j||_1.
    """
    delta = (1.0 - c) * np.abs(S)
    if norm == 2.0:
        r = delta / np.sqrt(N)
        wide = delta > 2 * c * N
        r[wide] = 2 * np.sqrt(c * (delta[wide] - c * N[wide]))
        return r
    return np.minimum(c, delta / N) / np.abs(world.M).sum(axis=0).max()


@given(world=tt.worlds(max_d=256, codes=("pm1",), noise=st.just(0.0)), data=st.data(),
       c=st.floats(0.05, 0.95), norm=st.sampled_from((2.0, np.inf)),
       lam=st.floats(0.05, 1.5), seed=tt.seeds())
def test_purified_network_is_robust_within_its_certified_radius(world, data, c, norm, lam,
                                                                seed):
    s = world.sample(data.draw(tt.sizes(1, 32), label="n"), seed)
    net = TwoLayerReLU.purified(world, c=c)
    S = s.Z @ world.w_star
    N = np.count_nonzero(s.Z, axis=1).astype(float)
    r = certified_radius(S, N, c, norm, world)
    # Against theory.py: for c >= 1/3 (l2) and for linf the certificate is the spec's
    # formula with the sample's own sparsity N and margin |S| in place of k and sqrt(k).
    for i in range(len(S)):
        ref = theory.purified_radius(N[i], norm, c=c, margin=abs(S[i]), d=world.d,
                                     dictionary=world.dictionary)
        if norm == 2.0 and c >= 1 / 3:
            assert r[i] == pytest.approx(ref, rel=1e-12)
        elif norm == np.inf:
            assert r[i] >= ref * (1 - 1e-12)  # theory's /sqrt(d) is a valid (smaller) radius
            if world.dictionary != "orthogonal":
                assert r[i] == pytest.approx(ref, rel=1e-12)
    eps = float(lam * np.median(r))
    safe = r > eps * (1 + 1e-6)  # 1e-6 of margin dwarfs the kernels' rounding (~1e-13)
    y = s.y
    for name, delta in (
            ("pgd", attacks.pgd(net, s.X, y, eps, norm, steps=10, random_start=True,
                                seed=seed)),
            ("fgm", attacks.fgm(net, s.X, y, eps, norm)),
            ("dense", attacks.dense_direction(world, y, eps, norm))):
        correct = y * net.decision_function(s.X + delta) > 0
        assert np.all(correct[safe]), f"{name} broke a certified point at eps={eps:.4g}"

    # Tightness: move every active atom by t against the label.  Each term shifts by t
    # (agreeing ones only down to 0), so y f <= (1 - c)|S| - N t, which is <= 0 at
    # t = (1 - c)|S|/N; in l2 that step has norm (1 - c)|S|/sqrt(N) = r.  Checked where r
    # is that formula (l2 with 2cN >= (1 - c)|S|; linf with M = I and the margin term binding).
    if norm == 2.0:
        tight = (1 - c) * np.abs(S) <= 2 * c * N
        t = r * (1 + 1e-6) / np.sqrt(N)
    else:
        tight = np.full(len(S), world.dictionary == "identity") & ((1 - c) * np.abs(S) / N < c)
        t = r * (1 + 1e-6)
    if tight.any():
        Dz = -(y * t)[:, None] * world.w_star[None, :] * (s.Z != 0)
        Dx = Dz @ world.M.T
        radius = tt.lp_norms(Dx, norm)
        assert np.all(radius[tight] <= r[tight] * (1 + 2e-6))
        assert np.all(y[tight] * net.decision_function(s.X[tight] + Dx[tight]) <= 0)
