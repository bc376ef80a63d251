"""Full-batch gradient descent for the smoothed-ReLU CNN, clean or adversarial.

Spec ``robust_features.md`` sections 2.2 and 3: standard training is full-batch
GD on the clean empirical risk of one fixed sample of ``n_train`` points;
adversarial training recomputes adversarial examples of every training point
at the current weights, then takes a GD step on the adversarial risk only (no
clean term).  The inner attack is the paper's one-step gradient ascent
(``adversarial="fgm"``: FGSM for l_inf, normalised FGM for l2) or multi-step PGD
(``"pgd"``).  The radius can ramp up linearly from 0 (``eps_ramp`` steps), and
the model may arrive already trained (warm start).

Logged every ``log_every`` steps: feature learning Gamma_u, Gamma_v (mean over
classes of max_r <w_{k,r}, u_k>, resp. v_k), cross terms, the most negative
v-correlation, the logit decomposition of F_y over the robust / non-robust /
noise patches (held-out mean), clean accuracy, and robust accuracy (PGD in the
threat norm, and the structured -v_y attack) on a held-out set.
"""

from __future__ import annotations

import math

import numpy as np

from .. import attacks
from .._validation import (check_bool, check_callable, check_float, check_instance, check_int,
                           check_memory, check_norm, norm_name)
from ..models import SmoothedReLUCNN
from ..worlds import RobustNonRobustPatches
from ..attacks.structured import structured_accuracy
from ._core import (History, convergence_diagnostics, progress_bar, register_trainer,
                    resolve_attack, run_steps, split_seed)

__all__ = ["train_cnn", "adversarial_examples", "feature_summary", "logit_decomposition"]


def feature_summary(W, U, V):
    """Feature-learning statistics of filters ``W`` (K, m, d) against features U, V (K, d).

    Returns
    -------
    dict
        ``gamma_u`` / ``gamma_v``: mean over k of max_r <w_{k,r}, u_k> (resp. v_k);
        ``gamma_u_cross`` / ``gamma_v_cross``: mean over k != j of max_r <w_{k,r}, u_j>;
        ``gamma_v_min``: mean over k of min_r <w_{k,r}, v_k> (negative when
        adversarial training pushes filters against v); ``gamma_u_slowest``:
        min over k of max_r <w_{k,r}, u_k> (the last class to learn u);
        ``w_l1``: mean l1 norm of a filter.
    """
    W = np.asarray(W, dtype=np.float64)
    K = W.shape[0]
    cu = np.einsum("kmd,jd->kmj", W, U)
    cv = np.einsum("kmd,jd->kmj", W, V)
    diag = np.arange(K)
    off = ~np.eye(K, dtype=bool)
    return {
        "gamma_u": float(cu.max(axis=1)[diag, diag].mean()),
        "gamma_v": float(cv.max(axis=1)[diag, diag].mean()),
        "gamma_u_cross": float(cu.max(axis=1)[off].mean()),
        "gamma_v_cross": float(cv.max(axis=1)[off].mean()),
        "gamma_v_min": float(cv.min(axis=1)[diag, diag].mean()),
        "gamma_u_slowest": float(cu.max(axis=1)[diag, diag].min()),
        "w_l1": float(np.abs(W).sum(axis=2).mean()),
    }


def logit_decomposition(model, sample):
    """Mean contribution to the true-class score F_y of each kind of patch.

    Returns
    -------
    dict
        ``logit_robust``, ``logit_nonrobust``, ``logit_noise``: held-out means of
        the sums over the robust patch, the non-robust patches and the
        noise-only patches of sum_r sigma(<w_{y,r}, x_p>); they add up to the
        mean of F_y.
    """
    C = model.patch_contributions(sample.X)  # (n, P, K)
    Cy = C[np.arange(len(sample)), :, sample.y]  # (n, P)
    return {
        "logit_robust": float((Cy * sample.robust).sum(axis=1).mean()),
        "logit_nonrobust": float((Cy * sample.nonrobust).sum(axis=1).mean()),
        "logit_noise": float((Cy * sample.noise_only).sum(axis=1).mean()),
    }


def adversarial_examples(model, X, y, eps, norm, *, steps=1, step_size=None, random_start=False,
                         rng=None):
    """Training-time attack: X plus ``steps`` projected steepest-ascent steps (last iterate).

    ``steps=1`` with the default step size eps and no random start is the
    paper's one-step ascent: FGSM (l_inf, X + eps sign(grad)) or normalised FGM
    (l2); it equals :func:`theorylab.attacks.fgm`.  More steps is PGD returning
    the *last* iterate (Madry et al.; the spec's pilot), unlike
    :func:`theorylab.attacks.pgd`, which keeps the best iterate for evaluation.
    This is :func:`theorylab.attacks.ascent` on validated arrays.

    Parameters
    ----------
    X, y : validated arrays (``model.check_X`` / ``model.check_y``)
    eps : float
    norm : {inf, 2}
        Normalised norm (``check_norm``).
    step_size : float, optional
        Default eps for one step, 2.5 eps / steps otherwise (the pilot's choice).
    rng : Generator, optional
        For the random start (uniform in the ball).
    """
    if eps == 0.0:
        return X
    spec = attacks.get("ascent")
    return X + spec.run(model, X, y, eps, norm, steps=steps, step_size=step_size,
                        random_start=random_start, seed=rng if rng is not None else 0)


def train_cnn(model, world, *, steps, lr=0.5, n_train=512, adversarial=None, eps=0.0, norm=None,
              pgd_steps=3, pgd_step_size=None, random_start=False, attack_options=None,
              eps_ramp=0, log_every=None, eval_size=500, eval_eps=None, eval_steps=10,
              monitor_steps=None, seed=0, progress=False, callback=None):
    """Train a :class:`~theorylab.models.SmoothedReLUCNN` on a patch world.

    Parameters
    ----------
    model : SmoothedReLUCNN
        Trained in place; may already be trained (warm start).
    world : RobustNonRobustPatches
    steps : int
        Number of full-batch GD steps (>= 1).
    lr : float, default 0.5
        Step size eta (> 0); the spec's pilot used 0.5 clean and 2 adversarial.
    n_train : int, default 512
        Size of the fixed training sample.
    adversarial : {None, "fgm", "pgd", "ascent"}
        None: standard training.  "fgm": one step of normalised gradient ascent
        from the clean point (the paper's algorithm).  "pgd" (= "ascent"):
        ``pgd_steps`` projected steps, last iterate (see :func:`adversarial_examples`).
    eps : float, default 0
        Adversarial radius: > 0 with ``adversarial`` (clean training is
        ``adversarial=None``).
    norm : {"linf", "l2"}, optional
        Threat norm; default ``world.threat``.
    pgd_steps, pgd_step_size, random_start :
        Inner PGD settings (step default 2.5 eps / steps, as in the pilot; the
        last iterate is used, see :func:`adversarial_examples`).
    attack_options : dict, optional
        Further options of the inner ascent (:func:`theorylab.attacks.ascent`):
        ``form``, ``objective``, and for ``"fgm"`` a ``step_size`` (the one
        step's size, or gamma of the unnormalised form), e.g.
        ``{"form": "gradient", "step_size": 50.0, "objective": "margin"}``.
        Validated before training; ``steps`` and ``random_start`` belong to
        ``adversarial`` / ``pgd_steps`` / ``random_start`` and are refused here.
    eps_ramp : int, default 0
        Ramp the radius linearly from 0 to ``eps`` over this many steps.
    log_every : int, optional
        Logging period (default steps // 10, at least 1); the last step is
        always logged.
    eval_size : int, default 500
        Held-out set size.
    eval_eps : float, optional
        Radius of the logged robust accuracy (PGD with ``eval_steps`` steps and
        a random start, plus the structured attack); not logged when None.
    monitor_steps : int, optional
        The catastrophic-overfitting monitor: at every logged step, PGD with this
        many steps (random start, best iterate) attacks the *training* set at the
        current radius; logged as ``train_pgd_loss`` / ``train_pgd_accuracy``
        beside ``loss`` / ``train_accuracy`` (the training attack's).  The
        monitor has its own random stream: it does not change the training run.
    seed : int, SeedSequence or Generator, default 0
        One seed for the run: training set, held-out set and attack starts are
        independent child streams.  Same int seed, same training set, so a warm
        start from a standard run with the same seed sees the same data.
    progress : bool, default False
        Show a tqdm bar.
    callback : callable, optional
        ``callback(step, model, record)`` after each logged step.

    Returns
    -------
    History
        Records with ``step``, ``eps``, ``loss``, ``train_accuracy``,
        ``clean_accuracy``, ``robust_accuracy`` and ``structured_accuracy``
        (NaN without ``eval_eps``), ``train_pgd_loss`` and ``train_pgd_accuracy``
        (NaN without ``monitor_steps``), the :func:`feature_summary` keys and the
        :func:`logit_decomposition` keys; ``convergence`` says whether the loss
        reached a plateau over the last fifth of the steps
        (:func:`~theorylab.training.convergence_diagnostics`).

    Raises
    ------
    TrainingDiverged
        When the loss or the weights stop being finite.
    """
    check_instance("model", model, SmoothedReLUCNN)
    check_instance("world", world, RobustNonRobustPatches)
    steps = check_int("steps", steps, 1)
    lr = check_float("lr", lr, 0.0, low_open=True)
    n_train = check_int("n_train", n_train, 1)
    eps = check_float("eps", eps, 0.0)
    p = check_norm(world.threat if norm is None else norm, allowed=(2.0, np.inf))
    pgd_steps = check_int("pgd_steps", pgd_steps, 1)
    if pgd_step_size is not None:
        pgd_step_size = check_float("pgd_step_size", pgd_step_size, 0.0, low_open=True)
    random_start = check_bool("random_start", random_start)
    # "pgd" in this trainer is the last-iterate ascent (the pilot's training attack); "fgm"
    # is the paper's one step: one ascent step of size eps from the clean point.
    one = adversarial == "fgm"
    attack, options = resolve_attack(
        adversarial, eps, p, steps=1 if one else pgd_steps,
        step_size=None if one else pgd_step_size, random_start=random_start and not one,
        rename={"pgd": "ascent", "fgm": "ascent"})
    options = _with_attack_options(attack, options, attack_options, adversarial,
                                   pgd_step_size)
    eps_ramp = check_int("eps_ramp", eps_ramp, 0)
    eval_size = check_int("eval_size", eval_size, 1)
    eval_steps = check_int("eval_steps", eval_steps, 1)
    if eval_eps is not None:
        eval_eps = check_float("eval_eps", eval_eps, 0.0)
    if monitor_steps is not None:
        monitor_steps = check_int("monitor_steps", monitor_steps, 1)
    log_every = max(1, steps // 10) if log_every is None else check_int("log_every", log_every, 1)
    check_callable("callback", callback)
    check_memory("n_train", (n_train, world.P, world.d), copies=4)
    check_memory("eval_size", (eval_size, world.P, world.d), copies=4)
    if world.d != model.d or world.K != model.K:
        raise ValueError(f"world (K={world.K}, d={world.d}) does not match model "
                         f"(K={model.K}, d={model.d})")

    # The monitor's stream is a fourth child: the first three are those of split_seed(seed).
    data_rng, eval_rng, attack_rng, monitor_rng = split_seed(seed, 4)
    train_set = world.sample(n_train, data_rng, dtype=model.dtype)
    held_out = world.sample(eval_size, eval_rng, dtype=model.dtype)
    X, y = train_set.X, train_set.y

    history = History(config={
        "steps": steps, "lr": lr, "n_train": n_train, "adversarial": adversarial, "eps": eps,
        "norm": norm_name(p), "pgd_steps": pgd_steps, "pgd_step_size": pgd_step_size,
        "random_start": random_start, "eps_ramp": eps_ramp, "eval_eps": eval_eps,
        "attack_options": {k: v for k, v in options.items() if k in ("form", "objective",
                                                                     "step_size")},
        "monitor_steps": monitor_steps,
        "seed": seed if isinstance(seed, int) else None,
        "world": world.spec() if isinstance(world.seed, (int, np.integer)) else None,
    })

    def radius(t):
        return eps * min(1.0, t / eps_ramp) if eps_ramp else eps

    def inputs(eps_t):
        if attack is None or eps_t == 0.0:
            return X
        return X + attack.run(model, X, y, eps_t, p, seed=attack_rng, **options)

    def step(t):
        loss, F, grad = model.weight_gradient(inputs(radius(t)), y, check_input=False)
        return loss, F, grad

    def record(t, eps_t, loss, train_acc):
        rec = {"step": t, "eps": eps_t, "loss": loss, "train_accuracy": train_acc,
               "clean_accuracy": model.accuracy(held_out.X, held_out.y),
               "robust_accuracy": math.nan, "structured_accuracy": math.nan}
        if eval_eps is not None:
            rec["robust_accuracy"] = attacks.robust_accuracy(
                model, held_out.X, held_out.y, eval_eps, p, steps=eval_steps,
                random_start=True, seed=attack_rng)
            rec["structured_accuracy"] = structured_accuracy(model, world, held_out, eval_eps, p)
        rec.update(_monitor(model, X, y, eps_t, p, monitor_steps, monitor_rng))
        rec.update(feature_summary(model.W, world.U, world.V))
        rec.update(logit_decomposition(model, held_out))
        history.records.append(rec)
        if callback is not None:
            callback(t, model, rec)
        return rec

    desc = f"adversarial ({adversarial})" if adversarial else "standard"
    with progress_bar(progress, steps, desc) as bar:
        def log(t, mean_loss, F):
            if t % log_every == 0:
                rec = record(t, radius(t), mean_loss, float(np.mean(F.argmax(axis=1) == y)))
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.3g}", gu=f"{rec['gamma_u']:.2f}",
                                    gv=f"{rec['gamma_v']:.2f}")

        run_steps(model, steps=steps, lr=lr, step=step, history=history, before_update=log,
                  bar=bar)
        # The final state (after the last update), on the last step's inputs.
        loss, F, _ = model.weight_gradient(inputs(radius(steps)), y, check_input=False)
        record(steps, radius(steps), float(np.mean(loss)), float(np.mean(F.argmax(axis=1) == y)))
    # The loss plateau only: no threshold here, and the feature correlations Gamma_u, Gamma_v
    # grow without bound on separable data (they are not scale-free like the dense ratio).
    history.convergence = convergence_diagnostics(history)
    model.metadata.setdefault("world", history.config["world"])
    return history


def _with_attack_options(attack, options, extra, adversarial, pgd_step_size):
    # The trainer's attack options plus the user's ``attack_options``, validated together.
    if extra is None:
        return options
    if not isinstance(extra, dict):
        raise ValueError(f"attack_options must be a dict, got {type(extra).__name__}")
    if attack is None:
        raise ValueError("attack_options needs an adversarial attack (adversarial is None)")
    owned = sorted(set(extra) & {"steps", "random_start"})
    if owned:
        raise ValueError(f"attack_options: {owned} are set by adversarial / pgd_steps / "
                         "random_start, not here")
    if "step_size" in extra and adversarial != "fgm" and pgd_step_size is not None:
        raise ValueError("attack_options: step_size given twice (also pgd_step_size)")
    return attack.check_options({k: v for k, v in {**options, **extra}.items() if k != "seed"})


def _monitor(model, X, y, eps_t, p, steps, rng):
    # Loss and accuracy of the training set under PGD (best iterate, random start).
    if steps is None:
        return {"train_pgd_loss": math.nan, "train_pgd_accuracy": math.nan}
    Xa = X
    if eps_t > 0:
        Xa = X + attacks.get("pgd").run(model, X, y, eps_t, p, seed=rng, steps=steps,
                                        step_size=None, random_start=True, restarts=1)
    loss, _ = model.loss_and_input_gradient(Xa, y, check_input=False)
    return {"train_pgd_loss": float(np.mean(loss)),
            "train_pgd_accuracy": float(np.mean(model.correct(Xa, y, check_input=False)))}


register_trainer("SmoothedReLUCNN", train_cnn)
