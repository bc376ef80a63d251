"""Fill the Numba cache once, in one process, before any worker starts.

Worker processes that compile the same kernel at the same time write the same
cache files concurrently, which can corrupt the cache (numba #10128).  The
driver therefore calls every kernel an experiment needs on tiny inputs first
(through the public models, so the compiled signatures are the ones the cells
use); the workers then only load from the cache.

Kernel families: ``two_layer`` (TwoLayerReLU, its training and attacks),
``linear``, ``polynomial``, ``ntk``, ``cnn`` (the Li & Li patch CNN).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["FAMILIES", "families_for", "warm_kernels", "warm_shared"]

FAMILIES = ("two_layer", "linear", "polynomial", "ntk", "cnn")


def families_for(experiment):
    """The kernel families an experiment description needs."""
    if "warm" in experiment:
        return list(experiment["warm"])
    kind = experiment["kind"]
    if kind == "pipeline":
        return ["two_layer"]
    if kind == "check":
        cid = experiment["check"]
        if cid.startswith("fp."):
            return ["two_layer", "linear"]
        if cid.startswith("lb."):
            return ["two_layer", "linear", "polynomial", "ntk"]
        if cid.startswith("ll."):
            return ["cnn"]
        return list(FAMILIES)
    return []  # a user's callable: say which in experiment.warm


def _sparse(d=8):
    from theorylab.worlds import SparseCoding

    world = SparseCoding(d, 2, seed=0)
    return world, world.sample(16, 1)


def _two_layer():
    from theorylab import attacks
    from theorylab.models import TwoLayerReLU
    from theorylab.training import train, train_many

    world, s = _sparse()
    net = TwoLayerReLU.for_world(world, seed=0)
    for norm in (2.0, np.inf):
        train(net, world, steps=2, batch_size=8, adversarial="fgm", eps=0.1, norm=norm, seed=0)
        train(net, world, steps=1, batch_size=8, adversarial="pgd", eps=0.1, norm=norm, seed=0,
              pgd_steps=2)
        attacks.pgd(net, s.X, s.y, 0.1, norm, steps=2)
        attacks.fgm(net, s.X, s.y, 0.1, norm)
        # Every attack, the certificate and the exact solver, as the checks evaluate.
        _evaluate(net, s, norm, world=world, exact=True)
    net.margins(s.X, s.y)
    TwoLayerReLU.purified(world).margins(s.X, s.y)
    train_many([TwoLayerReLU.for_world(world, seed=k) for k in range(2)], [(s.X, s.y)] * 2, steps=1)


def _evaluate(model, s, norm, **kw):
    from theorylab.evaluate import Budget, robustness

    tiny = Budget(pgd_steps=1, apgd_iters=2, square_queries=2, fmn_steps=2, crown_iters=1,
                  node_limit=2)
    robustness(model, s.X[:4], s.y[:4], [0.05], norm, budget=tiny, **kw)


def _linear():
    from theorylab.models import LinearClassifier

    _, s = _sparse()
    lin = LinearClassifier(s.X.shape[1]).fit(s.X, s.y)
    for p in (2.0, np.inf):
        lin.worst_case_margin(s.X, s.y, 0.1, p)
    lin.input_gradient(s.X, s.y)


def _polynomial():
    from theorylab.models import PolynomialClassifier
    from theorylab.training.baselines import adversarial_separable

    world, s = _sparse()
    sep = PolynomialClassifier.separable(world.d, 3).fit(s.X, s.y)
    sep.worst_case_margin(s.X, s.y, 0.1, np.inf)
    sep.input_gradient(s.X, s.y)
    adversarial_separable(sep, s.X, s.y, 0.1, max_iter=1)
    ker = PolynomialClassifier.kernel(world.d, 3).fit(s.X, s.y)
    ker.input_gradient(s.X, s.y)
    PolynomialClassifier.oracle(world, 3).margins(s.X, s.y)


def _ntk():
    from theorylab.models import NTKClassifier

    world, s = _sparse()
    for gate in ("threshold", "relu"):
        m = NTKClassifier.empirical(world.d, 8, gate=gate, seed=0).fit(s.X, s.y)
        m.input_gradient(s.X, s.y)
    a = NTKClassifier.analytic(world.d).fit(s.X, s.y)
    a.input_gradient(s.X, s.y)
    a.gram(s.X)
    a.gram(s.X, s.X[:3])  # a test Gram: the unsymmetric kernel


def _cnn():
    from theorylab.attacks import pgd, structured_curve
    from theorylab.images.ilyas import representation
    from theorylab.models import SmoothedReLUCNN
    from theorylab.training import train
    from theorylab.worlds import RobustNonRobustPatches

    world = RobustNonRobustPatches(2, 4, 8, s=1, alpha=1.0, beta=1.0, n_nonrobust=1,
                                   noise=0.1, seed=0)
    model = SmoothedReLUCNN(2, 2, 8, seed=0)
    train(model, world, steps=1, n_train=8, eval_size=8, seed=0)
    train(model, world, steps=1, n_train=8, eval_size=8, adversarial="pgd", eps=0.05,
          pgd_steps=2, seed=0)
    train(model, world, steps=1, n_train=8, eval_size=8, adversarial="fgm", eps=0.05, seed=0)
    s = world.sample(8, 1)
    model.input_gradient(s.X, s.y)
    structured_curve(model, world, s, [0.1, 0.2])
    representation(model, s.X)  # the real-image experiments' features
    for norm in (2.0, np.inf):
        pgd(model, s.X, s.y, 0.05, norm, steps=2)
        _evaluate(model, s, norm)


def warm_shared():
    """Compile the kernels several families call (the worlds' samplers, the logistic loss).

    Run once, in one process, before families are warmed in parallel, so that no two
    processes compile these at the same time.
    """
    from theorylab._kernels.relu_net import logistic
    from theorylab.worlds import RobustNonRobustPatches

    _, s = _sparse()
    logistic(np.zeros(2), np.ones(2))
    RobustNonRobustPatches(2, 4, 8, s=1, alpha=1.0, beta=1.0, n_nonrobust=1, noise=0.1,
                           seed=0).sample(4, 1)
    return s.X.shape


_WARMERS = {"two_layer": _two_layer, "linear": _linear, "polynomial": _polynomial,
            "ntk": _ntk, "cnn": _cnn}


def warm_kernels(families):
    """Compile (or load from the cache) every kernel of ``families``.

    A family whose warm-up raises is reported as a RuntimeWarning, not an
    error: the cells that need it will record their own errors.

    Returns
    -------
    list of str
        The families warmed without error.
    """
    ok = []
    for f in families:
        if f not in _WARMERS:
            raise ValueError(f"experiment.warm: unknown kernel family {f!r}; known: "
                             f"{list(FAMILIES)}")
        try:
            _WARMERS[f]()
            ok.append(f)
        except Exception as exc:  # noqa: BLE001 - reported, the sweep goes on
            warnings.warn(f"warming the {f!r} kernels failed ({type(exc).__name__}: {exc}); "
                          "workers may compile them concurrently", RuntimeWarning,
                          stacklevel=2)
    return ok
