"""Shared test configuration: Hypothesis profiles, a Numba warm-up, a one-thread fixture.

Profiles (registered by :func:`theorylab.testing.register_profiles`), chosen
by ``$HYPOTHESIS_PROFILE`` (else ``ci`` when ``$CI`` is set, else ``dev``):

* ``dev``: a few random examples per property;
* ``ci`` (``make test``): derandomised, no example database, no deadline,
  a bounded number of examples: two runs of the same command on the same tree
  draw the same examples (Hypothesis seeds each test from its source and mixes
  in constants from the library's source, so editing either may change them);
* ``thorough`` (``make test-thorough``): 1000 random examples per property.
"""

import numba
import numpy as np
import pytest
from hypothesis import settings

from theorylab import testing as _tt

_tt.register_profiles()
settings.load_profile(_tt.profile_from_environment())


def _warm_two_layer():
    # Every kernel (and type signature) the test suites call, on tiny inputs, so
    # compilation or cache loading happens here rather than inside a timed test
    # or a Hypothesis example.  float64 and the models' own argument types only.
    from theorylab import attacks
    from theorylab._kernels import relu_net
    from theorylab.models import TwoLayerReLU

    X = np.zeros((2, 3))
    y = np.ones(2)
    relu_net.loss_and_weight_gradient(X, y, np.ones((2, 3)), np.zeros(2))
    relu_net.loss_and_input_gradient(X, y, np.ones((2, 3)), np.zeros(2))
    relu_net.scores(X, np.ones((2, 3)), np.zeros(2))
    relu_net.thresholds(np.ones((2, 3)), np.float64(0.5), 0, np.zeros((0, 0)))
    relu_net.logistic(np.zeros(2), y)

    rng = np.random.default_rng(0)
    Xr = rng.standard_normal((3, 3))
    yr = np.array([1.0, -1.0, 1.0])
    net = TwoLayerReLU(3, 2, init_scale=1.0)
    net.weight_gradient(Xr, yr)
    attacks.pgd(net, Xr, yr, 0.1, 2, steps=1, random_start=True)
    attacks.fgm(net, Xr, yr, 0.1, 2)  # the compiled fgm (pgd's is compiled above)


def _warm_cnn():
    from theorylab._kernels import cnn
    from theorylab.models import SmoothedReLUCNN

    rng = np.random.default_rng(0)
    cnn_model = SmoothedReLUCNN(2, 2, 3, W=rng.standard_normal((2, 2, 3)))
    Xp, yc = rng.standard_normal((2, 2, 3)), np.array([0, 1])
    cnn_model.decision_function(Xp)
    cnn_model.loss(Xp, yc)
    cnn_model.input_gradient(Xp, yc)
    cnn_model.weight_gradient(Xp, yc)
    cnn.smoothed_relu(np.zeros(2), 3, 0.5)
    cnn.smoothed_relu_derivative(np.zeros(2), 3, 0.5)
    cnn_model.patch_contributions(Xp)
    cnn.scores_along(Xp, Xp, cnn_model.W, 3, 0.5, np.ones(2))
    for linf in (True, False):
        cnn.ascent_step(np.zeros_like(Xp), Xp, 0.1, 0.1, linf)
        cnn.ascent(Xp, yc, cnn_model.W, 3, 0.5, np.zeros_like(Xp), 1, 0.1, 0.1, linf)


def _warm_kernel_learners():
    from theorylab._kernels import linear, ntk, polynomial
    from theorylab.models import LinearClassifier, NTKClassifier, PolynomialClassifier

    rng = np.random.default_rng(0)
    Xr = rng.standard_normal((3, 3))
    yr = np.array([1.0, -1.0, 1.0])
    lin = LinearClassifier(3, w=np.ones(3))
    lin.input_gradient(Xr, yr)
    lin.decision_function(Xr)
    linear.objective(Xr, yr, np.ones(3), 0.0, 0.0)

    sep = PolynomialClassifier(3, degrees=(1, 3), C=np.ones((2, 3)))
    sep.input_gradient(Xr, yr)
    sep.worst_case_margin(Xr, yr, 0.1, "inf")
    polynomial.separable_weight_gradient(Xr, yr, sep.degrees)
    ker = PolynomialClassifier(3, form="kernel", X_train=Xr, alpha=np.ones(3))
    ker.input_gradient(Xr, yr)
    polynomial.poly_gram(Xr, Xr, 3, 1.0, 1.0)

    for two_sided in (True, False):
        emp = NTKClassifier(3, W0=np.ones((2, 3)), b0=np.zeros(2), two_sided=two_sided)
        emp.input_gradient(Xr, yr)
        emp.gram(Xr)
        emp.gram(Xr, Xr[:2])
    ana = NTKClassifier(3, form="analytic", X_train=Xr, alpha=np.ones(3))
    ana.input_gradient(Xr, yr)
    ana.gram(Xr)
    ana.gram(Xr, Xr[:2])
    ntk.row_norms(Xr)


# The costliest part first (two_layer ~50 s from a cold cache, cnn ~25 s, the rest ~15 s):
# with pytest-xdist, worker i starts on part i, so on a cold cache the workers compile
# different kernels side by side instead of the same ones twice (and write the same cache
# files at once); each then takes the others' parts under their locks, by then a cache load.
_WARM_PARTS = (("two_layer", _warm_two_layer), ("cnn", _warm_cnn),
               ("kernel_learners", _warm_kernel_learners))


def _warm_all_kernels():
    import fcntl
    import os

    from theorylab._kernels._jit import CACHE_ENABLED

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    start = int(worker[2:]) if worker[2:].isdigit() else 0
    n = len(_WARM_PARTS)
    order = [_WARM_PARTS[(start + i) % n] for i in range(n)]
    cache = os.environ.get("NUMBA_CACHE_DIR")
    for name, warm in order:
        if not (CACHE_ENABLED and cache):
            warm()  # nothing shared between processes: no lock needed
            continue
        os.makedirs(cache, exist_ok=True)
        with open(os.path.join(cache, f".warm-{name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                warm()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session", autouse=True)
def _warm_kernels():
    """Compile (or load from cache) every kernel once, before any test runs.

    The warm-up is only an optimisation: if a model's API changed under it,
    the tests that use that model report the real error, so a failure here
    must not take the whole session down.
    """
    try:
        _warm_all_kernels()
    except Exception:  # noqa: BLE001 - see the docstring
        pass


@pytest.fixture(scope="module")
def one_numba_thread():
    """Run a module's kernels on one Numba thread.

    The property suites call kernels on tiny arrays thousands of times; on a
    small shared machine Numba's and OpenBLAS's thread pools then spin against
    each other, which costs far more than the work.  Results do not depend on
    the thread count (the kernels reduce in a fixed order), only the time does.
    """
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)


@pytest.fixture(scope="module")
def trained():
    """A small trained two-layer network, its world and 300 held-out points."""
    from theorylab.models import TwoLayerReLU
    from theorylab.training import ThresholdSchedule, train
    from theorylab.worlds import SparseCoding

    world = SparseCoding(32, 3, seed=0)
    model = TwoLayerReLU.for_world(world, seed=0)
    train(model, world, steps=200, schedule=ThresholdSchedule(1.0, 0.5, 100), seed=0)
    return world, model, world.sample(300, 7)
