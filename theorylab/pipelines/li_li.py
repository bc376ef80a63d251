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
step_size_train, random_start_train, warm_start,
ascent_form, ascent_objective                                  adversarial training
monitor_steps                                                  PGD on the training set while
                                                               training (overfitting monitor)
n_test, pgd_steps                                              evaluation (PGD, random start)

``step_size_train`` is the inner PGD step, and for the one-step ascent
(``adversarial="fgm"``) the size of its step (gamma with ``ascent_form="gradient"``);
None is :func:`theorylab.attacks.default_ascent_step`.
"""

from __future__ import annotations

import time

import numpy as np

from ..models import SmoothedReLUCNN
from ..training import train
from ..worlds import RobustNonRobustPatches
from ._stages import Stage

__all__ = ["BASE", "ADV", "make_world", "standard_run", "adversarial_run", "seeds",
           "WORLD_KEYS", "STD_KEYS", "ADV_KEYS", "escape_time", "overfitting_summary",
           "LOSS_GAP"]

# World, network, standard training and evaluation: every ll check.
BASE = dict(K=4, P=8, d=256, s=4, alpha=1.0, beta=1.0, n_nonrobust=4, noise=0.32, layout="A",
            threat="linf", m=8, q=3, rho=0.5, init_scale=0.01, n_train=256, lr_std=0.5,
            T_std=300, n_test=300, pgd_steps=10)
# Adversarial training (defaults: the paper's one-step algorithm from a fresh init).
ADV = dict(adversarial="fgm", eps_train=0.05, lr_adv=2.0, T_adv=600, eps_ramp=0,
           pgd_steps_train=3, step_size_train=None, random_start_train=False, warm_start=False,
           ascent_form="steepest", ascent_objective="loss", monitor_steps=None)

WORLD_KEYS = ("K", "P", "d", "s", "alpha", "beta", "n_nonrobust", "noise", "layout", "threat")
STD_KEYS = WORLD_KEYS + ("m", "q", "rho", "init_scale", "n_train", "lr_std", "T_std", "n_test")
ADV_KEYS = STD_KEYS + ("adversarial", "eps_train", "lr_adv", "T_adv", "eps_ramp",
                       "pgd_steps_train", "step_size_train", "random_start_train", "warm_start",
                       "ascent_form", "ascent_objective", "monitor_steps")


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
    one = p["adversarial"] == "fgm"
    # eps 0 (the mutation control) trains on clean points
    adversarial = p["adversarial"] if p["eps_train"] > 0 else None
    options = None
    if adversarial is not None:
        options = {"form": p.get("ascent_form", "steepest"),
                   "objective": p.get("ascent_objective", "loss")}
        if one and p["step_size_train"] is not None:
            options["step_size"] = p["step_size_train"]
    hist = train(model, base["world"], steps=p["T_adv"], lr=p["lr_adv"], n_train=p["n_train"],
                 adversarial=adversarial, eps=p["eps_train"], eps_ramp=p["eps_ramp"],
                 pgd_steps=p["pgd_steps_train"],
                 pgd_step_size=None if one else p["step_size_train"],
                 random_start=p["random_start_train"], attack_options=options,
                 monitor_steps=p.get("monitor_steps"), eval_size=64,
                 log_every=max(1, p["T_adv"] // 30), seed=s[2])
    return dict(world=base["world"], model=model, history=hist, test=base["test"],
                standard=base["model"], seconds=time.perf_counter() - t0)


ADVERSARIAL = Stage("ll.adversarial", "2", ADV_KEYS, _adversarial)


def adversarial_run(seed, params):
    """Adversarial training on the same training set as :func:`standard_run`.

    From a fresh init (the paper's setting), or from the standard network when
    ``warm_start`` is true (the spec's pilot configuration 6.1 Test 2(c)).

    Returns
    -------
    dict
        ``world``, ``model``, ``history``, ``test``, ``standard`` (the standard
        network of :func:`standard_run` on the same data), ``seconds``.
    """
    p = dict(BASE, **ADV)
    p.update(params)
    return ADVERSARIAL(seed, p)


# -- the one-step algorithm's clocks and its catastrophic-overfitting indicators -------

#: Nats by which the PGD training loss must exceed the one-step training loss for the
#: two to count as separated (at init both are log K; a fitted model has both near 0).
LOSS_GAP = 0.5


def escape_time(lr, init_scale, alpha, q):
    """The spec's escape time 1 / (eta alpha^q sigma_0^(q-2)), in GD steps (up to constants).

    The polynomial phase of sigma grows a correlation Gamma like
    Gamma' ~ eta alpha^q Gamma^(q-1), which blows up after ~ 1 / (eta alpha^q Gamma_0^(q-2))
    steps from Gamma_0 ~ sigma_0 (spec ``robust_features.md`` 6.1, practical notes).
    """
    if not (lr > 0 and init_scale > 0 and alpha > 0 and q >= 2):
        raise ValueError(f"escape_time needs lr, init_scale, alpha > 0 and q >= 2, got "
                         f"lr={lr}, init_scale={init_scale}, alpha={alpha}, q={q}")
    return 1.0 / (lr * alpha ** q * init_scale ** (q - 2))


def _first(steps, mask):
    idx = np.flatnonzero(mask)
    return float(steps[idx[0]]) if idx.size else float("nan")


def _persistent(steps, mask):
    # Start of the final run of True (NaN when the last checkpoint is False).
    if not mask.size or not mask[-1]:
        return float("nan")
    off = np.flatnonzero(~mask)
    return float(steps[off[-1] + 1]) if off.size else float(steps[0])


def overfitting_summary(history, rho):
    """When features escape, Gamma_v turns negative, and one-step and PGD training part ways.

    Parameters
    ----------
    history : History
        Of an adversarial run with the monitor on (``monitor_steps``).
    rho : float
        End of sigma's polynomial piece: a correlation above it has escaped.

    Returns
    -------
    dict
        ``escape_step`` (first logged step with every class's Gamma_u >= rho),
        ``gamma_v_negative_step`` (first with Gamma_v < 0), ``separation_step``
        (first with the PGD training loss above the one-step training loss by
        :data:`LOSS_GAP`), ``separation_step_persistent`` (from which they stay
        apart to the end), ``co_gap_final`` / ``co_gap_max`` (one-step minus PGD
        training accuracy); NaN where the event never happens (or no monitor ran).
    """
    steps = history["step"].astype(float)
    gap_loss = history["train_pgd_loss"] - history["loss"]
    gap_acc = history["train_accuracy"] - history["train_pgd_accuracy"]
    with np.errstate(invalid="ignore"):
        apart = gap_loss > LOSS_GAP
    return {
        "escape_step": _first(steps, history["gamma_u_slowest"] >= rho),
        "gamma_v_negative_step": _first(steps, history["gamma_v"] < 0),
        "separation_step": _first(steps, apart),
        "separation_step_persistent": _persistent(steps, apart),
        "co_gap_final": float(gap_acc[-1]),
        "co_gap_max": float(np.max(gap_acc)) if np.isfinite(gap_acc).all() else float("nan"),
    }
