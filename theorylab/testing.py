"""Testing helpers for your CI: claims as assertions, and Hypothesis strategies.

Claims as assertions
--------------------
:func:`assert_claim` runs a theorem check (theorylab's, an installed
package's, or your own :class:`proofs_check.Check`) on a few seeds and fails
with the verdict table unless it PASSES::

    from theorylab.testing import assert_claim

    def test_my_claim():
        assert_claim("user.linear_fgm_is_exact", seeds=3, modules=["examples/my_claim.py"])

The pytest plugin :mod:`theorylab.pytest_plugin` collects every registered
check as a test item instead (``pytest --theorylab-checks``).

Hypothesis strategies
---------------------
Strategies for theorylab's worlds, models, radii, norms and gradients, used
by theorylab's own property suites *and meant for yours*::

    from hypothesis import given
    from theorylab import testing as tt

    @given(tt.worlds(max_d=64), tt.seeds())
    def test_labels_are_signs(world, seed):
        s = world.sample(16, seed)
        assert set(s.y.tolist()) <= {-1.0, 1.0}

This module imports Hypothesis (the ``test`` extra: ``pip install 'theorylab[test]'``);
``import theorylab`` never imports it.

Design rules, so that suites stay fast and deterministic:

* Hypothesis draws the *structure* (sizes, parameter values, seeds, edge-case
  row kinds) and small arrays element by element (at most a few hundred
  entries); bulk data (a world's samples, wide random weights) comes from NumPy
  generators seeded by a drawn seed, so an example costs milliseconds and
  derandomised runs replay exactly.
* Edge cases are drawn on purpose, not left to luck: n = 1, m = 1, d = 1 and
  the largest size appear with a fixed probability (about 1/8 each end), and
  gradient / input rows can be all zero, tiny (1e-30 and 1e-300 scale) or huge
  (1e290 scale, finite).
* Float ranges are bounded (no NaN, no inf, magnitudes up to ``max_abs``,
  1e3 by default); extreme scales come only from the explicit edge-case row
  kinds, for properties that are scale-invariant.
* Only valid parameters are generated (k in [1, d], "hadamard" only for powers
  of two, ...); invalid-input behaviour is tested by example elsewhere.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("theorylab.testing needs Hypothesis; install it with "
                      "pip install 'theorylab[test]'") from exc

from .models import (THRESHOLD_RULES, LinearClassifier, NTKClassifier, PolynomialClassifier,
                     SmoothedReLUCNN, TwoLayerReLU)
from .worlds import SparseCoding
from .worlds.sparse_coding import CODES, DICTIONARIES

__all__ = [
    "assert_claim",
    "NORMS", "DUAL", "ROW_KINDS", "SCALES",
    "dual_exponent", "lp_norms",
    "seeds", "sizes", "dimensions", "sparsities", "noise_levels", "world_params", "worlds",
    "samples", "finite_floats", "matrices", "binary_labels", "class_labels", "gradients",
    "radii", "norms", "threshold_coefficients", "two_layer_nets", "cnn_models",
    "patch_inputs", "linear_models", "polynomial_models", "ntk_models",
    "PROFILE_EXAMPLES", "register_profiles", "profile_from_environment",
]

#: The threat norms theorylab's attacks accept, normalised (l2, linf, l1).
NORMS = (2.0, np.inf, 1.0)
#: Dual exponent q of each threat norm p (1/p + 1/q = 1).
DUAL = {2.0: 2.0, np.inf: 1.0, 1.0: np.inf}
#: Kinds of gradient / input rows :func:`gradients` can draw.
ROW_KINDS = ("normal", "zero", "sparse", "tiny", "tinier", "huge")
#: Multiplier of each row kind (``"sparse"`` rows are normal rows with one non-zero entry).
SCALES = {"normal": 1.0, "zero": 0.0, "sparse": 1.0, "tiny": 1e-30, "tinier": 1e-300,
          "huge": 1e290}
_ALIASES = {2.0: ("l2", 2, "2"), np.inf: ("linf", "inf", np.inf), 1.0: ("l1", 1, "1")}


def dual_exponent(p):
    """q with 1/p + 1/q = 1 for p in {2, inf, 1}."""
    return DUAL[float(p)]


def lp_norms(A, p):
    """Per-sample p-norm over all non-leading axes (plain NumPy, a test reference).

    Rows are divided by their largest magnitude first, so huge (1e290) and tiny
    (1e-300) rows give their true norm instead of inf or 0.
    """
    A = np.asarray(A, dtype=np.float64)
    flat = np.abs(A.reshape(A.shape[0], int(np.prod(A.shape[1:]))))
    s = flat.max(axis=1) if flat.shape[1] else np.zeros(flat.shape[0])
    safe = np.where(s > 0, s, 1.0)
    return s * np.linalg.norm(flat / safe[:, None], ord=float(p), axis=1)


# -- integers: seeds and sizes ------------------------------------------------

def seeds():
    """Non-negative integer seeds for NumPy generators (shrink towards 0)."""
    return st.integers(0, 2 ** 32 - 1)


def sizes(min_value=1, max_value=16):
    """Integers in [min_value, max_value], each end drawn with probability about 1/8.

    Hypothesis's plain ``integers`` rarely hits both ends of a wide range; sizes
    such as n = 1, m = 1 and d = 1 are where shape bugs hide.
    """
    if min_value == max_value:
        return st.just(min_value)
    inner = st.integers(min_value, max_value)
    return st.integers(0, 7).flatmap(
        lambda i: st.just(min_value) if i == 0 else st.just(max_value) if i == 1 else inner)


def dimensions(max_d=512, min_d=1):
    """Dimensions d in [min_d, max_d], biased to small values (cheap examples) and the ends."""
    small = st.integers(min_d, min(max_d, max(min_d, 16)))
    return st.one_of(sizes(min_d, max_d), small)


def sparsities(d):
    """Expected sparsity k in [1, d]: integers (k = 1 and k = d included) and non-integers."""
    if d == 1:
        return st.just(1.0)
    return st.one_of(sizes(1, d).map(float),
                     st.floats(1.0, float(d), allow_nan=False, allow_infinity=False))


def noise_levels(max_noise=0.5, allow_zero=True):
    """Noise sigma in [0, max_noise] (0 drawn on purpose when allowed)."""
    pos = st.floats(1e-3, max_noise, allow_nan=False, allow_infinity=False)
    return st.one_of(st.just(0.0), pos) if allow_zero else pos


# -- worlds and their samples ---------------------------------------------------

@st.composite
def world_params(draw, max_d=512, min_d=1, codes=CODES, dictionaries=DICTIONARIES,
                 noise=None, k=None):
    """Keyword arguments of :class:`~theorylab.worlds.SparseCoding`.

    Parameters
    ----------
    max_d, min_d : int
        Range of the dimension d.
    codes, dictionaries : sequences
        Allowed ``codes`` and ``dictionary`` values.  ``"hadamard"`` only comes
        with d a power of two (the world rejects anything else).
    noise : strategy of float, optional
        Noise levels (default :func:`noise_levels`).
    k : callable d -> strategy, optional
        Sparsities for a given d (default :func:`sparsities`).
    """
    dictionary = draw(st.sampled_from(tuple(dictionaries)))
    if dictionary == "hadamard":
        lo = max(0, math.ceil(math.log2(max(min_d, 1))))
        hi = int(math.floor(math.log2(max_d)))
        if lo > hi:
            raise ValueError(f"no power of two in [{min_d}, {max_d}] for a Hadamard dictionary")
        d = 2 ** draw(sizes(lo, hi))
    else:
        d = draw(dimensions(max_d, min_d))
    return {
        "d": d,
        "k": draw((sparsities if k is None else k)(d)),
        "noise": draw(noise_levels() if noise is None else noise),
        "codes": draw(st.sampled_from(tuple(codes))),
        "dictionary": dictionary,
        "code_low": draw(st.floats(0.01, 1.0, allow_nan=False)),
        "seed": draw(seeds()),
    }


def worlds(**kwargs):
    """:class:`~theorylab.worlds.SparseCoding` worlds; keyword arguments as :func:`world_params`."""
    return world_params(**kwargs).map(lambda p: SparseCoding(**p))


@st.composite
def samples(draw, world, min_n=1, max_n=64):
    """A :class:`~theorylab.worlds.Sample` of n in [min_n, max_n] points from ``world``."""
    return world.sample(draw(sizes(min_n, max_n)), draw(seeds()))


# -- arrays -------------------------------------------------------------------

def finite_floats(max_abs=1e3, *, allow_subnormal=False, min_abs=0.0):
    """Floats in [-max_abs, max_abs], no NaN or inf; optionally |x| >= min_abs or x == 0."""
    if min_abs <= 0:
        return st.floats(-max_abs, max_abs, allow_nan=False, allow_infinity=False,
                         allow_subnormal=allow_subnormal)
    mag = st.floats(min_abs, max_abs, allow_nan=False, allow_infinity=False)
    return st.one_of(st.just(0.0), st.tuples(st.sampled_from((-1.0, 1.0)), mag).map(
        lambda t: t[0] * t[1]))


@st.composite
def matrices(draw, n=None, d=None, *, max_n=16, max_d=16, max_abs=1e3, zero_rows=True,
             elements=None):
    """A float64 (n, d) array drawn element by element; some rows may be all zero.

    ``n`` and ``d`` are drawn with :func:`sizes` when not given.  Keep n * d in
    the hundreds: every entry is a Hypothesis draw.
    """
    n = draw(sizes(1, max_n)) if n is None else n
    d = draw(sizes(1, max_d)) if d is None else d
    A = draw(hnp.arrays(np.float64, (n, d), elements=elements if elements is not None else finite_floats(max_abs)))
    # One example in four zeroes a drawn subset of rows (all-zero rows: zero
    # gradients, closed gates, zero norms).
    if zero_rows and draw(st.integers(0, 3)) == 0:
        mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        A[mask] = 0.0
    return A


def binary_labels(n):
    """Labels in {-1, +1} as a float64 array of length n."""
    return st.lists(st.sampled_from((-1.0, 1.0)), min_size=n, max_size=n).map(
        lambda v: np.array(v, dtype=np.float64))


def class_labels(n, K):
    """Integer class labels in [0, K) of length n."""
    return st.lists(st.integers(0, K - 1), min_size=n, max_size=n).map(
        lambda v: np.array(v, dtype=np.int64))


@st.composite
def gradients(draw, n=None, d=None, *, max_n=8, max_d=32, kinds=ROW_KINDS, shape=None):
    """Gradient-like arrays whose rows are of the kinds in ``kinds`` (see :data:`ROW_KINDS`).

    A ``"normal"`` row has entries 0 or +-[1e-3, 1e3] (a dynamic range of at
    most 1e6 inside a row, so scaling a row by up to 1e+-30 stays far from
    underflow and overflow); ``"sparse"`` keeps one entry; ``"tiny"``,
    ``"tinier"`` and ``"huge"`` multiply a normal row by 1e-30, 1e-300 and
    1e290; ``"zero"`` is all zeros.  With ``shape`` (a tuple whose first entry
    is the number of samples) the rows are reshaped to it (patch gradients).

    Returns
    -------
    G : ndarray
    row_kinds : list of str
    """
    if shape is not None:
        n, d = shape[0], int(np.prod(shape[1:]))
    n = draw(sizes(1, max_n)) if n is None else n
    d = draw(sizes(1, max_d)) if d is None else d
    G = draw(hnp.arrays(np.float64, (n, d), elements=finite_floats(1e3, min_abs=1e-3)))
    row_kinds = draw(st.lists(st.sampled_from(tuple(kinds)), min_size=n, max_size=n))
    for i, kind in enumerate(row_kinds):
        if kind != "zero" and not G[i].any():
            G[i, draw(st.integers(0, d - 1))] = draw(st.sampled_from((-1.0, 1.0)))
        if kind == "sparse":
            keep = int(np.flatnonzero(G[i])[0])
            G[i, np.arange(d) != keep] = 0.0
        G[i] *= SCALES[kind]
    return (G if shape is None else G.reshape(shape)), row_kinds


# -- radii, norms, thresholds ------------------------------------------------------

def radii(max_value=1e3, *, min_positive=1e-6, allow_zero=True):
    """Radii eps: 0 (when allowed) or in [min_positive, max_value], log-uniform-ish.

    The positive part mixes a log-scale draw (so 1e-6 and 1e3 are both common)
    with Hypothesis's own float draws.
    """
    lo, hi = math.log10(min_positive), math.log10(max_value)
    pos = st.one_of(
        st.floats(lo, hi, allow_nan=False).map(lambda e: float(min(max_value, max(min_positive,
                                                                                10.0 ** e)))),
        st.floats(min_positive, max_value, allow_nan=False, allow_infinity=False))
    return st.one_of(st.just(0.0), pos) if allow_zero else pos


def norms(aliases=False):
    """Threat norms 2, inf, 1 (normalised floats, or with ``aliases`` any accepted spelling)."""
    if not aliases:
        return st.sampled_from(NORMS)
    return st.sampled_from(tuple(a for p in NORMS for a in (p,) + _ALIASES[p]))


def threshold_coefficients(max_c=2.0):
    """Threshold coefficients c >= 0 of the two-layer network (0 makes it linear)."""
    return st.one_of(st.just(0.0), st.floats(0.0, max_c, allow_nan=False, allow_infinity=False))


# -- models ---------------------------------------------------------------------

@st.composite
def two_layer_nets(draw, d=None, *, max_d=16, max_m=8, thresholds=THRESHOLD_RULES, max_c=2.0,
                   max_weight=10.0, dictionary=None, weights="arrays"):
    """:class:`~theorylab.models.TwoLayerReLU` networks.

    ``weights="arrays"`` draws W entry by entry (|W_ij| <= ``max_weight``, some
    rows possibly zero); ``weights="init"`` uses the model's Gaussian init with
    a drawn seed and scale (wide nets without thousands of draws).
    """
    d = draw(sizes(1, max_d)) if d is None else d
    m = draw(sizes(1, max_m))
    rule = draw(st.sampled_from(tuple(thresholds)))
    c = draw(threshold_coefficients(max_c))
    if weights == "arrays":
        W = draw(matrices(m, d, max_abs=max_weight))
        return TwoLayerReLU(d, m, threshold=rule, c=c, dictionary=dictionary, W=W)
    scale = draw(st.floats(1e-3, max_weight, allow_nan=False))
    return TwoLayerReLU(d, m, threshold=rule, c=c, dictionary=dictionary, init_scale=scale,
                        seed=draw(seeds()))


@st.composite
def cnn_models(draw, d=None, *, max_K=4, max_m=3, max_d=6, max_q=6, rho_range=(1e-2, 4.0),
               max_weight=3.0):
    """:class:`~theorylab.models.SmoothedReLUCNN` models: K, m, d, q in [2, max_q], rho, W."""
    K = draw(sizes(2, max_K))
    m = draw(sizes(1, max_m))
    d = draw(sizes(1, max_d)) if d is None else d
    q = draw(sizes(2, max_q))
    rho = draw(st.floats(*rho_range, allow_nan=False))
    W = draw(hnp.arrays(np.float64, (K, m, d), elements=finite_floats(max_weight)))
    return SmoothedReLUCNN(K, m, d, q=q, rho=rho, W=W)


@st.composite
def patch_inputs(draw, model, *, max_n=5, max_P=4, max_abs=1e3):
    """(X, y) for a :class:`SmoothedReLUCNN`: X of shape (n, P, d), labels in [0, K)."""
    n = draw(sizes(1, max_n))
    P = draw(sizes(1, max_P))
    X = draw(matrices(n, P * model.d, max_abs=max_abs)).reshape(n, P, model.d)
    return X, draw(class_labels(n, model.K))


@st.composite
def linear_models(draw, d=None, *, max_d=16, max_weight=1e3, intercept=True, min_abs=0.0):
    """:class:`~theorylab.models.LinearClassifier` with drawn w (may be zero) and b.

    With ``min_abs`` > 0 every entry of w (and b) is 0 or at least ``min_abs`` in magnitude.
    """
    d = draw(sizes(1, max_d)) if d is None else d
    el = finite_floats(max_weight, min_abs=min_abs)
    w = draw(hnp.arrays(np.float64, (d,), elements=el))
    b = draw(el) if intercept else 0.0
    return LinearClassifier(d, w=w, b=b)


@st.composite
def polynomial_models(draw, d=None, *, max_d=8, forms=("separable", "kernel"), max_degree=5,
                      max_support=6, max_coef=3.0, dictionary=None, intercept=True):
    """:class:`~theorylab.models.PolynomialClassifier`, separable or kernel form.

    Separable: odd degrees 1..max_degree (a drawn non-empty subset), coefficients
    in [-max_coef, max_coef], optional orthonormal ``dictionary``.  Kernel:
    degree, gamma, coef0, a support set and dual coefficients drawn directly.
    """
    d = draw(sizes(1, max_d)) if d is None else d
    form = draw(st.sampled_from(tuple(forms)))
    b = draw(finite_floats(max_coef)) if intercept else 0.0
    odd = list(range(1, max_degree + 1, 2))
    if form == "separable":
        degs = sorted(draw(st.sets(st.sampled_from(odd), min_size=1)))
        C = draw(hnp.arrays(np.float64, (len(degs), d), elements=finite_floats(max_coef)))
        return PolynomialClassifier(d, degrees=degs, C=C, M=dictionary, b=b)
    n = draw(sizes(1, max_support))
    return PolynomialClassifier(
        d, form="kernel", degree=draw(st.sampled_from(odd)),
        gamma=draw(st.floats(0.05, 2.0, allow_nan=False)),
        coef0=draw(st.floats(0.0, 2.0, allow_nan=False)),
        X_train=draw(matrices(n, d, max_abs=3.0)),
        alpha=draw(hnp.arrays(np.float64, (n,), elements=finite_floats(max_coef))), b=b)


@st.composite
def ntk_models(draw, d=None, *, max_d=8, forms=("empirical", "analytic"), max_m=8,
               max_support=6, max_abs=3.0, min_abs=0.0):
    """:class:`~theorylab.models.NTKClassifier`, empirical (frozen gates) or analytic.

    Empirical: W0 and a head V drawn entry by entry, thresholds b0 >= 0, one-
    or two-sided gates.  Analytic: a support set (rows may be zero or
    repeated) and dual coefficients.  With ``min_abs`` > 0 every drawn entry
    is 0 or at least ``min_abs`` in magnitude.
    """
    d = draw(sizes(1, max_d)) if d is None else d
    form = draw(st.sampled_from(tuple(forms)))
    el = finite_floats(max_abs, min_abs=min_abs)
    b = draw(el)
    if form == "empirical":
        m = draw(sizes(1, max_m))
        W0 = draw(matrices(m, d, elements=el))
        b0 = draw(hnp.arrays(np.float64, (m,), elements=st.floats(0.0, max_abs)))
        V = draw(matrices(m, d, elements=el))
        return NTKClassifier(d, W0=W0, b0=b0, V=V, two_sided=draw(st.booleans()), b=b)
    n = draw(sizes(1, max_support))
    return NTKClassifier(d, form="analytic", X_train=draw(matrices(n, d, elements=el)),
                         alpha=draw(hnp.arrays(np.float64, (n,), elements=el)), b=b)


# -- settings profiles -------------------------------------------------------------

#: Examples per property in each profile registered by :func:`register_profiles`.
PROFILE_EXAMPLES = {"dev": 15, "ci": 50, "thorough": 1000}


def register_profiles(ci_examples=None, thorough_examples=None):
    """Register the ``dev``, ``ci`` and ``thorough`` Hypothesis settings profiles.

    * ``dev``: few random examples, for quick local runs.
    * ``ci``: derandomised, no example database, no deadline (the first
      example may pay Numba compilation or a cold cache), a bounded number of
      examples, and the failure blob printed for replay.  The examples are a
      function of the test's source, of the Hypothesis and Python versions and
      of the *local* modules imported so far (Hypothesis mixes in constants it
      finds in their source, e.g. theorylab's): two runs of the same command
      on the same tree draw the same examples; editing the library may change
      them.
    * ``thorough``: at least 1000 random examples per property, no deadline.

    Returns the names registered.
    """
    from hypothesis import HealthCheck, settings

    # Every profile derives from Hypothesis's built-in defaults, not from whatever
    # profile is current: Hypothesis itself loads its own derandomised ``ci``
    # profile at import when $CI is set, and an unparented profile would inherit it
    # (``thorough`` became derandomised on the CI runner only).
    base = settings.get_profile("default")
    ci_n = PROFILE_EXAMPLES["ci"] if ci_examples is None else int(ci_examples)
    th_n = PROFILE_EXAMPLES["thorough"] if thorough_examples is None else int(thorough_examples)
    settings.register_profile("dev", base, max_examples=PROFILE_EXAMPLES["dev"], deadline=None)
    settings.register_profile("ci", base, max_examples=ci_n, derandomize=True, database=None,
                              deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("thorough", base, max_examples=th_n, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])
    return ("dev", "ci", "thorough")


def profile_from_environment(environ=None):
    """The profile to load: ``$HYPOTHESIS_PROFILE``, else ``ci`` when ``$CI`` is set, else ``dev``."""
    import os

    env = os.environ if environ is None else environ
    name = env.get("HYPOTHESIS_PROFILE", "").strip()
    if name:
        return name
    return "ci" if env.get("CI", "").strip() not in ("", "0", "false") else "dev"


# -- claims as assertions ---------------------------------------------------------------

def assert_claim(check_or_id, seeds=3, regime="quick", *, modules=(), params=None,
                 allow_inconclusive=False):
    """Run one theorem check and raise ``AssertionError`` unless it PASSES.

    Parameters
    ----------
    check_or_id : proofs_check.Check or str
        A check, or the id of a registered one (theorylab's checks, the
        installed packages' entry points and ``modules`` are loaded first).
    seeds : int or sequence of int, default 3
        ``n`` means seeds ``0 .. n-1``; the verdict rules are those of
        ``theorylab check`` (a criterion must hold on every seed to PASS).
    regime : {"quick", "full"}, default "quick"
    modules : iterable of str, optional
        Paths or dotted names of modules that register checks
        (as ``theorylab check --module``).
    params : dict, optional
        Merged into the check's parameters (e.g. a smaller ``n`` in CI).
    allow_inconclusive : bool, default False
        Accept INCONCLUSIVE too (a regime too small to judge the claim).

    Returns
    -------
    proofs_check.CheckResult
        The result, when the check passed.

    Raises
    ------
    AssertionError
        With the verdict table (criteria against the measured values, per
        seed summary) and, if the check raised, its traceback.
    ValueError
        For an unknown id or bad ``seeds`` / ``regime``, before anything runs.

    Examples
    --------
    >>> from theorylab.testing import assert_claim
    >>> result = assert_claim("user.linear_fgm_is_exact",
    ...                       modules=["examples/my_claim.py"])  # doctest: +SKIP
    >>> result.verdict  # doctest: +SKIP
    'PASS'
    """
    import proofs_check as pc

    pc.load_all(modules)
    results = pc.run([check_or_id], regime=regime, seeds=seeds, jobs=1,
                     params_override=params)
    result = results[0]
    accepted = {pc.PASS, pc.INCONCLUSIVE} if allow_inconclusive else {pc.PASS}
    if result.verdict not in accepted:
        message = (f"claim {result.check.id} is {result.verdict} ({regime} regime, seeds "
                   f"{result.seeds}): {result.check.claim}\n{pc.format_table(results)}")
        if result.error:
            message += "\n\n" + result.error.rstrip()
        raise AssertionError(message)
    return result
