"""The Feature Purification pipeline shared by the fp checks: clean, then FGM training.

One run per (parameters, seed) is computed and memoised for the process, so
checks V1 to V4 of a regime share their trained networks instead of training
them four times.  Parameters (``params`` dicts of the checks' regimes):

d, k, codes, dictionary, noise      the world (spec 1.3)
width_mult                          m = width_mult * d
init_scale                          sigma_0 (None: 1/d)
c0, c1, ramp_frac                   threshold schedule c: c0 -> c1 over ramp_frac * T
lr, batch, T, T_adv                 online SGD (fresh batch each step)
norm, eps_train                     FGM radius of adversarial training
clean_threshold_c                   mutation switch: a fixed threshold c for the clean
                                    network (0 makes the network linear)
n_test, pgd_steps                   evaluation
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from theorylab.models import TwoLayerReLU
from theorylab.training import ThresholdSchedule, train
from theorylab.worlds import SparseCoding

_CACHE = {}


@dataclass
class FPRun:
    world: SparseCoding
    clean: TwoLayerReLU
    adv: TwoLayerReLU
    oracle: TwoLayerReLU
    test: object
    clean_history: object
    adv_history: object
    seconds: float
    cache: dict = field(default_factory=dict)  # evaluations shared by checks


def _key(params, seed):
    return (seed, tuple(sorted((k, v) for k, v in params.items() if k in _PIPELINE_KEYS)))


_PIPELINE_KEYS = ("d", "k", "codes", "dictionary", "noise", "width_mult", "init_scale", "c0",
                  "c1", "ramp_frac", "lr", "batch", "T", "T_adv", "norm", "eps_train",
                  "clean_threshold_c", "n_test")


def fp_run(seed, params):
    """Train clean then adversarially (from the clean weights) and cache the result."""
    key = _key(params, seed)
    if key in _CACHE:
        return _CACHE[key]
    t0 = time.perf_counter()
    ss = np.random.SeedSequence([seed, 0x5EED])
    s_world, s_init, s_clean, s_adv, s_test = ss.spawn(5)
    p = params
    world = SparseCoding(p["d"], p["k"], noise=p.get("noise", 0.05), codes=p.get("codes", "pm1"),
                         dictionary=p.get("dictionary", "identity"),
                         seed=int(s_world.generate_state(1)[0]))
    broken_c = p.get("clean_threshold_c")
    clean = TwoLayerReLU.for_world(world, m=p.get("width_mult", 2) * world.d,
                                   init_scale=p.get("init_scale"), seed=s_init,
                                   threshold="fixed" if broken_c is not None else "max",
                                   c=broken_c if broken_c is not None else p["c0"])
    T = p["T"]
    schedule = None if broken_c is not None else ThresholdSchedule(
        p["c0"], p["c1"], max(1, int(p.get("ramp_frac", 0.5) * T)))
    h_clean = train(clean, world, steps=T, lr=p["lr"], batch_size=p["batch"],
                    schedule=schedule, seed=s_clean)
    adv = clean.copy()
    if broken_c is None:
        adv.c = p["c1"]
    h_adv = train(adv, world, steps=p["T_adv"], lr=p["lr"], batch_size=p["batch"],
                  adversarial="fgm", eps=p["eps_train"], norm=p["norm"], seed=s_adv)
    oracle = TwoLayerReLU.purified(world, c=p["c1"])
    test = world.sample(p.get("n_test", 1000), s_test)
    run = FPRun(world, clean, adv, oracle, test, h_clean, h_adv, time.perf_counter() - t0)
    _CACHE[key] = run
    return run


def clear_cache():
    """Forget memoised runs (tests use it to measure from scratch)."""
    _CACHE.clear()
