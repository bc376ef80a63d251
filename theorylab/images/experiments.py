"""The papers' image measurements at CPU scale: purification, low rank, D_R / D_NR.

Each function trains what it needs from one seed, runs single-threaded (see
:func:`~theorylab.images.fit.single_threaded`) and returns a plain dict:
numbers under their names, arrays for the figures under ``"arrays"``.

Learners: ``"two_layer"`` is :class:`~theorylab.models.TwoLayerReLU` on the
binary task (default digits 0-4 vs 5-9) with the scale-free threshold rule
``"norm"`` (b_i = c ||w_i||: the ``"max"`` rule measures a neuron against its
largest dictionary coefficient, and pixels are no dictionary); ``"cnn"`` is
:class:`~theorylab.models.SmoothedReLUCNN` on the K-class task, each image cut
into non-overlapping ``patch`` x ``patch`` patches (8x8 digits: 4 patches of 16
pixels), filters shared over patches.  Radii are in pixel units (pixels in
[0, 1]); nothing is clipped to the pixel box, as everywhere in theorylab.
"""

from __future__ import annotations

import numpy as np

from .. import attacks, metrics
from .._linalg import row_norms
from .._validation import check_choice, check_float, check_int, check_norm
from ..evaluate import Budget, robustness
from ..models import SmoothedReLUCNN, TwoLayerReLU
from . import ilyas
from .data import DEFAULT_BINARY, make_task, to_patches
from .fit import LowRank, fit, perturb, single_threaded

__all__ = ["DEFAULTS", "REGIMES", "check_params", "load_task", "make_learner",
           "purification_experiment", "low_rank_experiment", "robust_nonrobust_experiment"]

#: Parameters of every experiment (the quick regime of ``proofs_check/img_digits.py``).
DEFAULTS = dict(
    dataset="digits", data_path=None, binary=DEFAULT_BINARY, n_train=1200,
    m=32, c=0.5, init_scale=0.05,                    # two-layer net (2 m hidden ReLUs)
    cnn_m=8, cnn_init_scale=0.1, patch=4,             # CNN: 8 filters per class, 4x4 patches
    steps=300, lr=0.5,                                # clean full-batch GD
    attack="fgm", norm=2, eps_train=0.75, adv_steps=300, adv_lr=0.1, pgd_steps=5,
    eps_eval=0.75, eval_steps=20,                     # PGD-20 robust accuracy
    lowrank_eps=None,                                 # None: eps_train
    rob_attack="fgm", fresh_attack="fgm", eps_ramp=100, eps_nr=None, nr_steps=50,
    dr_steps=200, dr_step_size=0.1, n_probe=None, log_every=None,
)


# Radii: the clean network of each learner keeps ~15% PGD accuracy there, so there is room for
# adversarial training to show.  l2 0.75 is ~0.19 of a digit's median norm 3.9, the share
# that MNIST's customary eps = 2 is of its median norm; linf 0.1 is 1.6 of 16 grey levels.  The
# 10-class CNN is less robust, hence l2 0.5.  "full": PGD-trained, wider, longer.
_FULL = dict(attack="pgd", m=64, steps=600, adv_steps=600, eval_steps=50)
REGIMES = {
    "l2": {"quick": dict(norm=2, eps_train=0.75, eps_eval=0.75),
           "full": dict(_FULL, norm=2, eps_train=0.75, eps_eval=0.75)},
    "linf": {"quick": dict(norm="inf", eps_train=0.1, eps_eval=0.1),
             "full": dict(_FULL, norm="inf", eps_train=0.1, eps_eval=0.1)},
    "cnn": {"quick": dict(norm=2, eps_train=0.5, eps_eval=0.5),
            "full": dict(norm=2, eps_train=0.5, eps_eval=0.5, steps=600, adv_steps=600,
                         rob_attack="pgd", fresh_attack="pgd", eval_steps=50)},
}


def check_params(params):
    """Merge ``params`` into :data:`DEFAULTS`, rejecting unknown keys and bad values."""
    unknown = sorted(set(params or {}) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"params: unknown keys {unknown}; known: {sorted(DEFAULTS)}")
    P = dict(DEFAULTS, **(params or {}))
    for key in ("n_train", "m", "cnn_m", "patch", "steps", "adv_steps", "pgd_steps",
                "eval_steps", "eps_ramp", "nr_steps", "dr_steps"):
        check_int(key, P[key], 0 if key == "eps_ramp" else 1)
    for key in ("c", "eps_train", "eps_eval"):
        check_float(key, P[key], 0.0)
    for key in ("init_scale", "cnn_init_scale", "lr", "adv_lr", "dr_step_size"):
        check_float(key, P[key], 0.0, low_open=True)
    for key in ("lowrank_eps", "eps_nr"):
        if P[key] is not None:
            check_float(key, P[key], 0.0)
    for key in ("attack", "rob_attack", "fresh_attack"):
        check_choice(key, P[key], ("fgm", "pgd"))
    check_norm(P["norm"], allowed=(2.0, np.inf))
    return P


def load_task(P, *, multiclass=False, seed=0):
    """The task of parameters ``P`` (data set, binary groups, n_train), split with ``seed``."""
    from ..datasets import load_dataset

    ds = load_dataset(P["dataset"], P["data_path"])
    return make_task(ds, binary=None if multiclass else P["binary"], n_train=P["n_train"],
                     seed=seed)


def make_learner(kind, task, P, seed):
    """A fresh learner for ``task`` and the task's (X_train, X_test) in its input format."""
    check_choice("learner", kind, ("two_layer", "cnn"))
    if kind == "two_layer":
        model = TwoLayerReLU(task.d, P["m"], threshold="norm", c=P["c"],
                             init_scale=P["init_scale"], seed=seed)
        return model, task.X_train, task.X_test
    Xtr = to_patches(task.X_train, task.image_shape, P["patch"])
    model = SmoothedReLUCNN(task.n_classes, P["cnn_m"], Xtr.shape[2],
                            init_scale=P["cnn_init_scale"], seed=seed)
    return model, Xtr, to_patches(task.X_test, task.image_shape, P["patch"])


def _seeds(seed, n):
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence([seed, 0x1A6]).spawn(n)]


# The evaluation budget of these experiments: the strongest attacks at eval_steps, the
# certificate where the model has one (theorylab.evaluate).
def _budget(P):
    return Budget(pgd_steps=P["eval_steps"], apgd_iters=50, square_queries=300, fmn_steps=100,
                  crown_iters=20)


def _sandwich(model, X, y, P):
    """Robust accuracy at eps_eval, both sides: {"attack", "certified", "unresolved"}."""
    res = robustness(model, X, y, [P["eps_eval"]], P["norm"], budget=_budget(P), seed=0)
    return {"attack": float(res.attack_accuracy[0]),
            "certified": float(res.certified_accuracy[0]), "unresolved": int(res.unresolved[0])}


def _robust(model, X, y, P):
    # The attack side (no witness found by the strongest attacks): what the criteria compare.
    return _sandwich(model, X, y, P)["attack"]


def _probe_robust(model, X, y, P):
    # Logged during training (the D_R / D_NR curves): PGD alone, cheap enough for every step.
    return attacks.robust_accuracy(model, X, y, P["eps_eval"], P["norm"], steps=P["eval_steps"])


def _sides(prefix, sw):
    return {f"{prefix}_attack": sw["attack"], f"{prefix}_certified": sw["certified"],
            f"{prefix}_exact": sw["certified"] if sw["unresolved"] == 0 else float("nan"),
            f"{prefix}_unresolved": sw["unresolved"]}


def _adv_finetune(model, X, y, P, seed, attack=None, eps=None, low_rank=None):
    eps = P["eps_train"] if eps is None else eps
    # eps = 0 (the mutation tests' broken learner) is the same steps on clean points.
    return fit(model, X, y, steps=P["adv_steps"], lr=P["adv_lr"],
               adversarial=(attack or P["attack"]) if eps > 0 else None, eps=eps,
               norm=P["norm"], pgd_steps=P["pgd_steps"], low_rank=low_rank, seed=seed)


def _high_frequency(V, shape):
    # Share of each row's energy in the upper half of the 2-d DCT spectrum (u/h + v/w >= 1),
    # channels summed: how much of a weight is the "dense high-frequency mixture" of FP's figures.
    from scipy.fft import dctn

    h, w = shape[:2]
    C = dctn(V.reshape(V.shape[0], h, w, -1), axes=(1, 2), norm="ortho") ** 2
    u, v = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    total = C.sum(axis=(1, 2, 3))
    high = C[:, (u / h + v / w) >= 1.0].sum(axis=(1, 2))
    return np.where(total > 0, high / np.where(total > 0, total, 1.0), 0.0)


def _principle(clean, adv, shape):
    flat = lambda W: W.reshape(-1, W.shape[-1]).astype(np.float64)  # noqa: E731  (CNN filters)
    Wc, Wa, W0 = flat(clean.W), flat(adv.W), flat(clean.W_init)
    pr = metrics.purification(Wc, Wa, W0)
    V = Wc - pr["beta"][:, None] * Wa
    sv = np.linalg.svd(V, compute_uv=False) ** 2
    return {
        "fraction": pr["fraction"],
        "ratio_median": float(np.median(pr["ratio"])),
        "removed_fraction_median": float(np.median(row_norms(V) / row_norms(Wc))),
        "corr_init_clean": float(np.median(pr["corr_init_clean"])),
        "corr_init_adv": float(np.median(pr["corr_init_adv"])),
        "hf_removed": float(np.median(_high_frequency(V, shape))),
        "hf_adv": float(np.median(_high_frequency(Wa, shape))),
        "removed_top1_energy": float(sv[0] / sv.sum()) if sv.sum() > 0 else 0.0,
    }, {"W_init": W0, "W_clean": Wc, "W_adv": Wa, "image_shape": tuple(shape),
        "ratio": pr["ratio"]}


def purification_experiment(params=None, *, seed=0, task=None):
    """Clean training of the two-layer net, adversarial fine-tuning, the purification principle.

    Parameters
    ----------
    params : dict, optional
        Overrides of :data:`DEFAULTS` (``attack``, ``norm``, ``eps_train``, ...).
    seed : int
        Split, init and attack starts.
    task : ImageTask, optional
        Default: :func:`load_task` of the parameters.

    Returns
    -------
    dict
        ``clean_accuracy`` / ``robust_accuracy_clean`` of the clean network,
        ``adv_clean_accuracy`` / ``robust_accuracy_adv`` after fine-tuning
        (PGD-``eval_steps`` at ``eps_eval``, test set), the principle
        ``fraction`` and ``ratio_median`` (||beta_i w'_i|| / ||v_i||),
        ``removed_fraction_median`` (||v_i|| / ||w_i||), ``corr_init_clean`` /
        ``corr_init_adv`` (median |cos| with the init), ``hf_removed`` /
        ``hf_adv`` (median high-frequency energy share of v_i and of w'_i),
        ``removed_top1_energy`` (share of the removed parts in one direction),
        ``arrays`` (weights, for the figures) and ``models`` / ``task`` (for
        :func:`low_rank_experiment`).
    """
    P = check_params(params)
    s_split, s_init, s_attack = _seeds(seed, 3)
    with single_threaded():
        task = task or load_task(P, seed=s_split)
        clean, Xtr, Xte = make_learner("two_layer", task, P, s_init)
        ytr, yte = task.y_train, task.y_test
        fit(clean, Xtr, ytr, steps=P["steps"], lr=P["lr"])
        adv = clean.copy()
        _adv_finetune(adv, Xtr, ytr, P, s_attack)
        sw_clean, sw_adv = _sandwich(clean, Xte, yte, P), _sandwich(adv, Xte, yte, P)
        out = {"clean_accuracy": clean.accuracy(Xte, yte),
               "robust_accuracy_clean": sw_clean["attack"],
               "adv_clean_accuracy": adv.accuracy(Xte, yte),
               "robust_accuracy_adv": sw_adv["attack"],
               **_sides("robust_clean", sw_clean), **_sides("robust_adv", sw_adv)}
    out["robust_gain"] = out["robust_accuracy_adv"] - out["robust_accuracy_clean"]
    numbers, arrays = _principle(clean, adv, task.image_shape)
    out.update(numbers)
    out.update(arrays=arrays, models=(clean, adv), task=task)
    return out


def low_rank_experiment(params=None, *, seed=0, ranks=(1, 2, 4, 8), base=None):
    """Adversarial fine-tuning restricted to W = W_clean + A B of rank r, against full.

    Every rank starts from the clean network of :func:`purification_experiment`
    (``base``, computed when not given) and takes the same number of steps
    with the same attack and step size as its full fine-tuning; B starts at
    the top-r right singular vectors of the first adversarial gradient
    (:meth:`LowRank.spectral`) and A at zero.  ``lowrank_eps`` (default
    ``eps_train``) is the radius of the low-rank runs only.

    Returns
    -------
    dict
        ``robust_accuracy_clean``, ``robust_accuracy_full``, per rank
        ``robust_r{r}`` / ``clean_r{r}`` and ``recovered_r{r}`` =
        (robust_r - robust_clean) / (robust_full - robust_clean) (NaN when full
        fine-tuning gained nothing), ``full_update_energy_r{r}`` (share of
        ||W_full - W_clean||_F^2 in its top r singular values), and ``arrays``.
    """
    P = check_params(params)
    ranks = [check_int("ranks", r, 1) for r in ranks]
    base = base or purification_experiment(params, seed=seed)
    clean, full = base["models"]
    task = base["task"]
    low_eps = P["eps_train"] if P["lowrank_eps"] is None else P["lowrank_eps"]
    s_attack = _seeds(seed, 3)[2]
    Xtr, ytr, Xte, yte = task.X_train, task.y_train, task.X_test, task.y_test
    out = {k: base[k] for k in ("clean_accuracy", "robust_accuracy_clean")}
    out["robust_accuracy_full"] = base["robust_accuracy_adv"]
    out["clean_accuracy_full"] = base["adv_clean_accuracy"]
    with single_threaded():
        X0 = perturb(clean, Xtr, ytr, low_eps, check_norm(P["norm"]), P["attack"],
                     pgd_steps=P["pgd_steps"], rng=np.random.default_rng(s_attack))
        G0 = clean.weight_gradient(X0, ytr)[2]
        for r in ranks:
            net = clean.copy()
            _adv_finetune(net, Xtr, ytr, P, s_attack, eps=low_eps,
                          low_rank=LowRank.spectral(clean.W, r, G0))
            out[f"robust_r{r}"] = _robust(net, Xte, yte, P)
            out[f"clean_r{r}"] = net.accuracy(Xte, yte)
    gain = out["robust_accuracy_full"] - out["robust_accuracy_clean"]
    sv = np.linalg.svd(full.W - clean.W, compute_uv=False) ** 2
    for r in ranks:
        out[f"recovered_r{r}"] = ((out[f"robust_r{r}"] - out["robust_accuracy_clean"]) / gain
                                  if gain > 0 else float("nan"))
        out[f"full_update_energy_r{r}"] = float(sv[:r].sum() / sv.sum()) if sv.sum() else 0.0
    out["full_gain"] = gain
    out["arrays"] = {"ranks": ranks, "robust": [out[f"robust_r{r}"] for r in ranks],
                     "clean": [out[f"clean_r{r}"] for r in ranks],
                     "robust_full": out["robust_accuracy_full"],
                     "robust_clean": out["robust_accuracy_clean"],
                     "energy": [out[f"full_update_energy_r{r}"] for r in ranks]}
    return out


def _other_class(y, rng):
    # For each i a random j with y[j] != y[i]: D_R starts from an image of another class,
    # so whatever the start image leaves behind points away from the label.
    out = np.empty(len(y), dtype=np.int64)
    for i in range(len(y)):
        pool = np.flatnonzero(y != y[i])
        out[i] = pool[rng.integers(pool.size)]
    return out


def _dist(A, B):
    return np.linalg.norm((A - B).reshape(A.shape[0], -1), axis=1)


def robust_nonrobust_experiment(params=None, *, seed=0, task=None):
    """Ilyas-style D_R / D_NR, tracked while fresh CNNs train clean and adversarially.

    1. f_std: standard training of the CNN on the K-class task; f_rob: f_std
       adversarially fine-tuned (``rob_attack``; warm start, the spec's working
       recipe, robust_features.md 6.1(c)).
    2. From the held-out test images (``n_probe``, default all): D_R matches
       f_rob's pooled representation starting from an image of another class
       (label y kept); D_NR is a targeted PGD attack on f_std of radius
       ``eps_nr`` (default ``eps_train``) towards t = y + 1 mod K, relabelled t.
    3. Two fresh CNNs (a new init) train on the training set, one clean, one
       adversarially from scratch (``fresh_attack``, radius ramped in over
       ``eps_ramp`` steps); accuracy on D_R, D_NR and the clean / robust test
       set is logged along the way.

    Returns
    -------
    dict
        Final ``std_dr``, ``std_dnr``, ``std_clean``, ``std_robust`` and
        ``adv_*`` likewise; ``chance`` (1/K); ``dnr_success`` (f_std's own
        accuracy on D_NR) and ``dnr_on_rob`` (f_rob's); ``dr_residual``
        (median relative representation mismatch), ``dr_from_source`` /
        ``dr_from_start`` (median distance of D_R to its source / start image
        over the source-start distance); the purification principle of f_std
        -> f_rob filters (``cnn_fraction``, ``cnn_ratio_median``, ...);
        ``arrays`` with the training curves and a few example images.
    """
    P = check_params(params)
    eps_nr = P["eps_train"] if P["eps_nr"] is None else P["eps_nr"]
    s_split, s_std, s_fresh, s_attack = _seeds(seed, 4)
    with single_threaded():
        task = task or load_task(P, multiclass=True, seed=s_split)
        f_std, Xtr, Xte = make_learner("cnn", task, P, s_std)
        ytr, yte = task.y_train, task.y_test
        fit(f_std, Xtr, ytr, steps=P["steps"], lr=P["lr"])
        f_rob = f_std.copy()
        _adv_finetune(f_rob, Xtr, ytr, P, s_attack, attack=P["rob_attack"])
        n = len(yte) if P["n_probe"] is None else min(check_int("n_probe", P["n_probe"], 1),
                                                      len(yte))
        Xs, ys = Xte[:n], yte[:n]
        start = _other_class(ys, np.random.default_rng(s_attack))
        X_r, resid = ilyas.robust_dataset(f_rob, Xs, Xs[start], steps=P["dr_steps"],
                                          step_size=P["dr_step_size"])
        X_nr, t_nr, success = ilyas.non_robust_dataset(f_std, Xs, ys, eps_nr, P["norm"],
                                                       steps=P["nr_steps"])

        def probe(model):
            return {"dr": model.accuracy(X_r, ys), "dnr": model.accuracy(X_nr, t_nr),
                    "clean": model.accuracy(Xte, yte),
                    "robust": _probe_robust(model, Xte, yte, P)}

        runs = {}
        for name, attack in (("std", None), ("adv", P["fresh_attack"])):
            attack = attack if P["eps_train"] > 0 else None  # eps 0: the mutation control
            net = make_learner("cnn", task, P, s_fresh)[0]
            runs[name] = fit(net, Xtr, ytr, steps=P["steps"], lr=P["lr"], adversarial=attack,
                             eps=P["eps_train"] if attack else 0.0, norm=P["norm"],
                             pgd_steps=P["pgd_steps"], eps_ramp=P["eps_ramp"] if attack else 0,
                             log_every=P["log_every"], callback=probe, seed=s_attack)
        out = {"chance": 1.0 / task.n_classes, "eps_nr": eps_nr, "dnr_success": success,
               "dnr_on_rob": f_rob.accuracy(X_nr, t_nr),
               "dr_residual": float(np.median(resid)),
               "dr_from_source": float(np.median(_dist(X_r, Xs) / _dist(Xs, Xs[start]))),
               "dr_from_start": float(np.median(_dist(X_r, Xs[start]) / _dist(Xs, Xs[start]))),
               "f_std_clean": f_std.accuracy(Xte, yte), "f_rob_clean": f_rob.accuracy(Xte, yte)}
        for name, model in (("f_std", f_std), ("f_rob", f_rob)):
            sw = _sandwich(model, Xte, yte, P)
            out[f"{name}_robust"] = sw["attack"]
            out.update(_sides(f"{name}_robust", sw))
    for name, hist in runs.items():
        for key in ("dr", "dnr", "clean", "robust"):
            out[f"{name}_{key}"] = float(hist.final[key])
    out["dnr_drop"] = out["std_dnr"] - out["adv_dnr"]
    out["dr_gain"] = out["adv_dr"] - out["std_dr"]
    numbers, arrays = _principle(f_std, f_rob, (P["patch"], P["patch"]) + task.image_shape[2:])
    out.update({f"cnn_{k}": v for k, v in numbers.items()})
    out["arrays"] = {name: {k: hist[k].tolist() for k in ("step", "dr", "dnr", "clean", "robust")}
                     for name, hist in runs.items()}
    out["arrays"]["cnn_weights"] = arrays
    out["arrays"]["examples"] = {"source": Xs[:8], "robust": X_r[:8], "nonrobust": X_nr[:8],
                                 "y": ys[:8], "t": t_nr[:8], "patch": P["patch"],
                                 "image_shape": task.image_shape, "mean": task.mean}
    return out
