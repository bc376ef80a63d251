"""The Feature Purification pipeline: world -> clean network -> FGM from the clean weights.

Three declared stages (:class:`~theorylab.pipelines._stages.Stage`), each cached
per process under its parameters, its seed and a code version:

1. ``fp.clean``: the world and clean online SGD, keyed by the world and the
   clean-training parameters only.  Clean training does not depend on the
   threat norm, and it is equivariant under rotations of the dictionary
   (Gaussian init, isotropic noise and the "max" threshold rule are rotation
   invariant; tested in tests/test_models_training.py), so it always runs in
   the identity basis; a run with ``dictionary="hadamard"`` reuses it expressed
   in the Hadamard basis, W_H = W_I M^T, which has exactly the law of a network
   trained on the Hadamard world.
2. ``fp.base``: that network in the world's dictionary, the purified oracle and
   the test set (:func:`fp_base`).
3. ``fp.adversarial``: FGM training from the clean weights (:func:`fp_run`).

Parameters (the ``params`` dicts of the fp checks' regimes,
``proofs_check._fp_common.REGIMES``):

d, k, codes, noise                  the world (spec 1.3); dictionary as above
width_mult, init_scale              m = width_mult * d; sigma_0 (None: 1/d)
c0, c1, ramp_frac                   threshold schedule c: c0 -> c1 over ramp_frac * T
lr, batch, T, T_adv                 online SGD (fresh batch each step)
norm, eps_train                     FGM radius of adversarial training (0: clean steps)
clean_threshold_c                   mutation switch: a fixed threshold c for the clean
                                    network (0 makes the network linear)
n_test                              size of the test set

A user script calling :func:`fp_run` with a check's regime and seed gets the
check's networks bit for bit (tests/test_pipelines.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..models import TwoLayerReLU
from ..training import ThresholdSchedule, train
from ..worlds import SparseCoding
from ._stages import Stage

__all__ = ["FPRun", "fp_clean", "fp_base", "fp_run", "CLEAN_KEYS", "ADV_KEYS", "PARAMETERS"]

CLEAN_KEYS = ("d", "k", "codes", "noise", "width_mult", "init_scale", "c0", "c1", "ramp_frac",
              "lr", "batch", "T", "clean_threshold_c")
ADV_KEYS = ("dictionary", "norm", "eps_train", "T_adv", "n_test")
PARAMETERS = CLEAN_KEYS + ADV_KEYS


@dataclass
class FPRun:
    """One seed of the pipeline: world, clean / adversarial / oracle networks, test set."""

    world: SparseCoding
    clean: TwoLayerReLU
    adv: TwoLayerReLU
    oracle: TwoLayerReLU
    test: object
    clean_history: object
    adv_history: object
    seconds: float
    cache: dict = field(default_factory=dict)  # evaluations shared by checks
    shared_key: tuple = ()  # identifies the clean network and world (shared evaluations)


def _seeds(seed):
    # Independent streams for world, init, clean data, adversarial data, test set.
    return np.random.SeedSequence([seed, 0x5EED]).spawn(5)


def _world(seed, p, dictionary):
    s_world = _seeds(seed)[0]
    return SparseCoding(p["d"], p["k"], noise=p.get("noise", 0.05), codes=p.get("codes", "pm1"),
                        dictionary=dictionary, seed=int(s_world.generate_state(1)[0]))


def _clean(seed, p):
    t0 = time.perf_counter()
    _, s_init, s_clean, _, _ = _seeds(seed)
    world = _world(seed, p, "identity")
    broken_c = p.get("clean_threshold_c")
    clean = TwoLayerReLU.for_world(world, m=p.get("width_mult", 2) * world.d,
                                   init_scale=p.get("init_scale"), seed=s_init,
                                   threshold="fixed" if broken_c is not None else "max",
                                   c=broken_c if broken_c is not None else p["c0"])
    schedule = None if broken_c is not None else ThresholdSchedule(
        p["c0"], p["c1"], max(1, int(p.get("ramp_frac", 0.5) * p["T"])))
    hist = train(clean, world, steps=p["T"], lr=p["lr"], batch_size=p["batch"],
                 schedule=schedule, seed=s_clean)
    if broken_c is None:
        clean.c = p["c1"]
    return clean, world, hist, time.perf_counter() - t0


CLEAN = Stage("fp.clean", "1", CLEAN_KEYS, _clean)


def fp_clean(seed, params):
    """The clean network in the identity basis: (model, world, history, seconds)."""
    return CLEAN(seed, params)


def _rotated(model, world):
    # The identity-basis network expressed in ``world``'s dictionary: w -> M w.
    out = TwoLayerReLU(model.d, model.m, threshold=model.threshold, c=model.c,
                       init_scale=model.init_scale,
                       dictionary=None if world.identity else world.M,
                       W=model.W @ world.M.T)
    out.W_init = model.W_init @ world.M.T
    return out


def _base(seed, p):
    clean_id, _, h_clean, t_clean = fp_clean(seed, p)
    t0 = time.perf_counter()
    world = _world(seed, p, p.get("dictionary", "identity"))
    s_test = _seeds(seed)[4]
    return FPRun(world, _rotated(clean_id, world), None, TwoLayerReLU.purified(world, c=p["c1"]),
                 world.sample(p.get("n_test", 1000), s_test), h_clean, None,
                 t_clean + time.perf_counter() - t0,
                 shared_key=BASE.key(seed, p)[2:])


BASE = Stage("fp.base", "1", CLEAN_KEYS + ("dictionary", "n_test"), _base)


def fp_base(seed, params):
    """World, clean network (in the world's dictionary), purified oracle and test set.

    An :class:`FPRun` without adversarial training (``adv`` is None).
    """
    return BASE(seed, params)


def _adversarial(seed, p):
    base = fp_base(seed, p)
    t0 = time.perf_counter()
    s_adv = _seeds(seed)[3]
    adv = base.clean.copy()
    h_adv = train(adv, base.world, steps=p["T_adv"], lr=p["lr"], batch_size=p["batch"],
                  adversarial="fgm" if p["eps_train"] > 0 else None,  # 0: mutation control
                  eps=p["eps_train"], norm=p["norm"], seed=s_adv)
    return FPRun(base.world, base.clean, adv, base.oracle, base.test, base.clean_history, h_adv,
                 base.seconds + time.perf_counter() - t0, shared_key=base.shared_key)


ADVERSARIAL = Stage("fp.adversarial", "1", CLEAN_KEYS + ADV_KEYS, _adversarial)


def fp_run(seed, params):
    """Clean training, then FGM adversarial training from the clean weights.

    Parameters
    ----------
    seed : int
        The run's seed (world, init, data, test set are independent children).
    params : dict
        The parameters listed in the module docstring (a check's regime).

    Returns
    -------
    FPRun
    """
    return ADVERSARIAL(seed, params)
