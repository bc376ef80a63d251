"""The Li & Li pipeline: world, standard training, adversarial training of the CNN.

Two declared stages, cached per process under their parameters, seed and code
version, so the checks of a regime, sweeps and users' scripts share trained
networks (the standard network of ``ll.standard_nonrobust`` is the baseline of
``ll.adversarial_robust`` and the d = 256 point of ``ll.threshold_scaling``):

* ``ll.standard``: :func:`standard_run`, full-batch GD from a fresh init;
* ``ll.adversarial``: :func:`adversarial_run`, adversarial training on the same
  training set, from a fresh init (the paper's setting) or warm-started.

Parameters (spec ``robust_features.md`` section 6.1, config A0, with n_train halved):

K, P, d, s, alpha, beta, n_nonrobust, noise, layout, threat   the world (spec 1.2)
m, q, rho, init_scale                                          the CNN (spec 2.2)
n_train, lr_std, T_std                                         standard full-batch GD
adversarial, eps_train, lr_adv, T_adv, eps_ramp, pgd_steps_train,
step_size_train, random_start_train, warm_start                adversarial training
n_test, pgd_steps                                              evaluation (PGD, random start)
"""

from __future__ import annotations

import time

import numpy as np

from ..models import SmoothedReLUCNN
from ..training import train
from ..worlds import RobustNonRobustPatches
from ._stages import Stage

__all__ = ["BASE", "ADV", "make_world", "standard_run", "adversarial_run", "seeds",
           "WORLD_KEYS", "STD_KEYS", "ADV_KEYS"]

# World, network, standard training and evaluation: every ll check.
BASE = dict(K=4, P=8, d=256, s=4, alpha=1.0, beta=1.0, n_nonrobust=4, noise=0.32, layout="A",
            threat="linf", m=8, q=3, rho=0.5, init_scale=0.01, n_train=256, lr_std=0.5,
            T_std=300, n_test=300, pgd_steps=10)
# Adversarial training (defaults: the paper's one-step algorithm from a fresh init).
ADV = dict(adversarial="fgm", eps_train=0.05, lr_adv=2.0, T_adv=600, eps_ramp=0,
           pgd_steps_train=3, step_size_train=None, random_start_train=False, warm_start=False)

WORLD_KEYS = ("K", "P", "d", "s", "alpha", "beta", "n_nonrobust", "noise", "layout", "threat")
STD_KEYS = WORLD_KEYS + ("m", "q", "rho", "init_scale", "n_train", "lr_std", "T_std", "n_test")
ADV_KEYS = STD_KEYS + ("adversarial", "eps_train", "lr_adv", "T_adv", "eps_ramp",
                       "pgd_steps_train", "step_size_train", "random_start_train", "warm_start")


def seeds(seed):
    """world, init, training data, test data, attacks: independent children of (seed, tag)."""
    return np.random.SeedSequence([seed, 0x11]).spawn(5)


def make_world(seed, p):
    """The patch world of ``p`` for ``seed``."""
    s_world = seeds(seed)[0]
    return RobustNonRobustPatches(p["K"], p["P"], p["d"], s=p["s"], alpha=p["alpha"],
                                  beta=p["beta"], n_nonrobust=p["n_nonrobust"], noise=p["noise"],
                                  threat=p["threat"], layout=p["layout"],
                                  seed=int(s_world.generate_state(1)[0]))


def _fresh_model(seed, p):
    return SmoothedReLUCNN(p["K"], p["m"], p["d"], q=p["q"], rho=p["rho"],
                           init_scale=p["init_scale"], seed=seeds(seed)[1])


def _standard(seed, p):
    t0 = time.perf_counter()
    s = seeds(seed)
    world = make_world(seed, p)
    model = _fresh_model(seed, p)
    hist = train(model, world, steps=p["T_std"], lr=p["lr_std"], n_train=p["n_train"],
                 eval_size=64, seed=s[2])
    test = world.sample(p["n_test"], s[3])
    return dict(world=world, model=model, history=hist, test=test,
                seconds=time.perf_counter() - t0)


STANDARD = Stage("ll.standard", "1", STD_KEYS, _standard)


def standard_run(seed, params):
    """Standard full-batch GD from a fresh init.

    Returns
    -------
    dict
        ``world``, ``model``, ``history``, ``test`` (held-out PatchSample),
        ``seconds``.
    """
    return STANDARD(seed, dict(BASE, **params))


def _adversarial(seed, p):
    t0 = time.perf_counter()
    s = seeds(seed)
    base = standard_run(seed, p)
    model = base["model"].copy() if p["warm_start"] else _fresh_model(seed, p)
    hist = train(model, base["world"], steps=p["T_adv"], lr=p["lr_adv"], n_train=p["n_train"],
                 # eps 0 (the mutation control) trains on clean points
                 adversarial=p["adversarial"] if p["eps_train"] > 0 else None,
                 eps=p["eps_train"], eps_ramp=p["eps_ramp"], pgd_steps=p["pgd_steps_train"],
                 pgd_step_size=p["step_size_train"], random_start=p["random_start_train"],
                 eval_size=64, log_every=max(1, p["T_adv"] // 30), seed=s[2])
    return dict(world=base["world"], model=model, history=hist, test=base["test"],
                seconds=time.perf_counter() - t0)


ADVERSARIAL = Stage("ll.adversarial", "1", ADV_KEYS, _adversarial)


def adversarial_run(seed, params):
    """Adversarial training on the same training set as :func:`standard_run`.

    From a fresh init (the paper's setting), or from the standard network when
    ``warm_start`` is true (the spec's pilot configuration 6.1 Test 2(c)).
    """
    p = dict(BASE, **ADV)
    p.update(params)
    return ADVERSARIAL(seed, p)
