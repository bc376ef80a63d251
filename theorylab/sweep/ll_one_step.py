"""The sweep experiment of Li & Li's one-step algorithm from scratch (issue 17).

:func:`run` is a ``kind = "callable"`` experiment
(``function = "theorylab.sweep.ll_one_step:run"``): one gradient-ascent step builds
each adversarial example from the clean point, full-batch GD runs on the adversarial
risk only, from the random initialisation (:func:`theorylab.pipelines.li_li.adversarial_run`
with ``adversarial="fgm"``), then the network is evaluated at the training radius.

A cell's parameters are :data:`DEFAULTS` (the base cell of the map), the spec's
``[fixed]`` table, then the overrides of its ``cell`` table (the map's one axis,
``cell = [{...}, ...]``: a one-factor-at-a-time design is a list of cells, not a
product).  Three knobs are relative, so that a cell states the theory's scales:

``eps_rel``
    The training (and judged) radius as a multiple of the erasure threshold
    ``world.erasure_radius()`` (beta / ||v||_1 in linf).
``horizon``
    T = horizon x the spec's escape time 1 / (eta alpha^q sigma_0^(q-2)), capped at
    ``T_cap`` steps (the cap is the compute budget; ``T_capped`` says when it bit).
    T therefore scales as 1 / eta.
``ramp_frac``
    The radius ramps up linearly over this fraction of T (0: none).

``run_seed`` is the pipeline's seed; the engine's cell seed is ignored, so every cell
sees the same worlds, initialisations and training sets (common random numbers, and
the seeds 0, 1, 2 of ``theorylab check --seeds 3``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["DEFAULTS", "BUDGET_OPTIONS", "resolve_cell", "run", "CURVES", "FIGURES", "load_records",
           "draw_figures", "main"]

# The base cell: the quick ll regime's world at d = 128, the paper's algorithm at eta 0.5.
DEFAULTS = dict(
    K=4, P=8, d=128, s=4, alpha=1.0, beta=1.0, n_nonrobust=4, noise=0.32, layout="A",
    threat="linf", m=8, q=3, rho=0.5, init_scale=0.01, n_train=256, lr_std=0.5, T_std=300,
    n_test=300, lr_adv=0.5, eps_rel=0.8, horizon=20.0, T_cap=10000, ramp_frac=0.0,
    ascent_form="steepest", ascent_objective="loss", step_size_train=None,
    monitor_steps=20, run_seed=0,
)
# The evaluation at the training radius: the checks' budget (proofs_check._evaluation),
# minus the minimum-norm attack, which serves curves, not one radius.
BUDGET_OPTIONS = dict(pgd_steps=20, apgd_iters=50, apgd_restarts=1, square_queries=200)
ATTACKS = ("fgm", "pgd", "apgd", "square")
# Logged series kept per cell (for the trajectory figures), 4 significant digits.
CURVES = ("step", "gamma_u", "gamma_u_slowest", "gamma_v", "loss", "train_accuracy",
          "train_pgd_loss", "train_pgd_accuracy")


def resolve_cell(params):
    """The full parameter set of a cell, and its pipeline parameters.

    Returns
    -------
    (dict, dict)
        The cell's knobs (:data:`DEFAULTS` <- ``params`` <- ``params["cell"]``) and the
        :func:`~theorylab.pipelines.li_li.adversarial_run` parameters they define
        (``eps_train``, ``T_adv``, ``eps_ramp`` resolved).

    Raises
    ------
    ValueError
        A key that is not a knob (naming it), or a knob out of range.
    """
    from theorylab.pipelines.li_li import escape_time, make_world

    params = dict(params)
    cell = params.pop("cell", {}) or {}
    if not isinstance(cell, dict):
        raise ValueError(f"cell must be a table of overrides, got {cell!r}")
    unknown = sorted((set(params) | set(cell)) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"ll_one_step: unknown parameter(s) {unknown}; known: "
                         f"{sorted(DEFAULTS)}")
    knobs = {**DEFAULTS, **params, **cell}
    for name in ("eps_rel", "horizon", "lr_adv", "init_scale"):
        if not (isinstance(knobs[name], (int, float)) and knobs[name] > 0):
            raise ValueError(f"ll_one_step: {name} must be > 0, got {knobs[name]!r}")
    if not 0 <= knobs["ramp_frac"] < 1:
        raise ValueError(f"ll_one_step: ramp_frac must be in [0, 1), got {knobs['ramp_frac']!r}")
    if isinstance(knobs["T_cap"], bool) or not isinstance(knobs["T_cap"], int) \
            or knobs["T_cap"] < 1:
        raise ValueError(f"ll_one_step: T_cap must be an integer >= 1, got {knobs['T_cap']!r}")
    t_escape = escape_time(knobs["lr_adv"], knobs["init_scale"], knobs["alpha"], knobs["q"])
    T_wanted = int(math.ceil(knobs["horizon"] * t_escape))
    T = min(T_wanted, knobs["T_cap"])
    world = make_world(knobs["run_seed"], knobs)
    eps = knobs["eps_rel"] * world.erasure_radius()
    pipe = {k: v for k, v in knobs.items()
            if k not in ("eps_rel", "horizon", "T_cap", "ramp_frac", "run_seed")}
    pipe.update(adversarial="fgm", warm_start=False, eps_train=eps, T_adv=T,
                eps_ramp=int(round(knobs["ramp_frac"] * T)))
    knobs.update(eps_train=eps, T_adv=T, T_wanted=T_wanted, T_capped=T < T_wanted,
                 escape_time_predicted=t_escape)
    return knobs, pipe


def _round(values):
    return [float(f"{v:.4g}") if math.isfinite(v) else v for v in map(float, values)]


def run(seed, params):
    """One cell: the one-step algorithm from scratch, evaluated at its training radius.

    Parameters
    ----------
    seed : int
        The engine's cell seed; ignored (``run_seed`` seeds the pipeline, see the module
        docstring).
    params : dict
        :data:`DEFAULTS` overrides, and a ``cell`` table of further overrides.

    Returns
    -------
    dict
        Attack side (every attack of :data:`ATTACKS`, PGD-20 and APGD-50 among them, each
        witness re-checked), PGD-20 alone, the one-step attack alone, the certified side
        (the CNN's interval certificate) and the unresolved count at eps; clean accuracy;
        PGD-20 on the standard network (the contrast); final Gamma_u / Gamma_v (and the
        slowest class's Gamma_u); the points each attack broke first; the
        :func:`~theorylab.pipelines.li_li.overfitting_summary` steps; the resolved T, eps
        and the escape-time prediction; ``seconds``; and under ``curves_*`` the logged
        series of :data:`CURVES`.
    """
    from theorylab import attacks
    from theorylab.evaluate import Budget, robustness
    from theorylab.pipelines.li_li import adversarial_run, overfitting_summary, seeds

    knobs, pipe = resolve_cell(params)
    rs = knobs["run_seed"]
    r = adversarial_run(rs, pipe)
    model, world, test, hist = r["model"], r["world"], r["test"], r["history"]
    eps, p = knobs["eps_train"], world.threat
    res = robustness(model, test.X, test.y, [eps], p, attacks=ATTACKS,
                     budget=Budget(**BUDGET_OPTIONS), seed=seeds(rs)[4])
    at = res.at(eps)
    pgd20 = attacks.robust_accuracy(model, test.X, test.y, eps, p, attack="pgd", steps=20,
                                    random_start=True, seed=seeds(rs)[4])
    opts = {"form": knobs["ascent_form"], "objective": knobs["ascent_objective"],
            "step_size": knobs["step_size_train"]}
    delta = attacks.ascent(model, test.X, test.y, eps, p, **opts)
    std = r["standard"]
    pgd20_std = attacks.robust_accuracy(std, test.X, test.y, eps, p, attack="pgd", steps=20,
                                        random_start=True, seed=seeds(rs)[4])
    fin = hist.final
    out = {
        "robust_attack": at["attack"], "robust_certified": at["certified"],
        "robust_unresolved": at["unresolved"], "robust_masking": at["masking"],
        "pgd20_accuracy": pgd20, "pgd20_standard": pgd20_std,
        "one_step_accuracy": float(np.mean(model.correct(test.X + delta, test.y))),
        "structured_accuracy": attacks.structured_accuracy(model, world, test, eps),
        "clean_accuracy": res.clean_accuracy,
        "gamma_u": fin["gamma_u"], "gamma_v": fin["gamma_v"],
        "gamma_u_slowest": fin["gamma_u_slowest"], "gamma_v_min": fin["gamma_v_min"],
        "w_l1": fin["w_l1"],
        "train_loss": fin["loss"], "train_pgd_loss": fin["train_pgd_loss"],
        "eps_train": eps, "T_adv": knobs["T_adv"], "T_wanted": knobs["T_wanted"],
        "T_capped": bool(knobs["T_capped"]), "horizon_reached": knobs["T_adv"] * knobs["lr_adv"],
        "escape_time_predicted": knobs["escape_time_predicted"],
        "seconds": r["seconds"],
    }
    # Which attack broke the points first (the cascade: fgm, pgd, apgd, then square).
    out.update({f"broken_by_{k}": int(v[0].sum()) for k, v in res.broken_by.items()})
    out.update(overfitting_summary(hist, knobs["rho"]))
    # "works" as issue 17 defines it, on this seed (the region needs it on every seed).
    out["works"] = bool(at["attack"] >= 0.9 and pgd20 >= 0.9 and out["clean_accuracy"] >= 0.98
                        and fin["gamma_u"] > fin["gamma_v"])
    for name in CURVES:
        out[f"curves_{name}"] = _round(hist[name])
    return out


# -- the map's figures, from the exported CSV ---------------------------------------

#: The figures :func:`draw_figures` writes (file stem -> drawing function name).
FIGURES = {"ll_one_step_map": "one_step_map", "ll_one_step_box": "one_step_box",
           "ll_one_step_trajectories": "one_step_trajectories",
           "ll_one_step_escape": "escape_scaling"}


def _parse(text):
    # A CSV field as the store exported it: number, bool, JSON list / table, or text.
    import json

    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return float(text) if any(ch in text for ch in ".eEn") else int(text)
    except ValueError:
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def load_records(path):
    """The ``done`` cells of the map's CSV export as records for :mod:`theorylab.plots.li_li_map`.

    Returns
    -------
    list of dict
        ``{"cell": overrides, "run_seed": int, "metrics": dict}``, one per cell and seed.
    """
    import csv
    import json

    records = []
    try:
        fh = open(path, newline="")
    except OSError as exc:
        raise ValueError(f"csv: cannot read {path!r} ({exc.strerror or exc})") from None
    with fh:
        reader = csv.DictReader(fh)
        need = {"status", "cell", "run_seed", "robust_attack"}
        if not need <= set(reader.fieldnames or ()):
            raise ValueError(f"csv: {path!r} is not an export of the ll_one_step map (needs "
                             f"columns {sorted(need)})")
        skip = {"idx", "key", "status", "replicate", "seed", "cell", "run_seed", "started",
                "finished", "worker", "attempts", "error", "versions"} | set(DEFAULTS)
        for row in reader:
            if row["status"] != "done":
                continue
            metrics = {k: _parse(v) for k, v in row.items() if k not in skip}
            records.append({"cell": json.loads(row["cell"]), "run_seed": int(row["run_seed"]),
                            "metrics": metrics})
    if not records:
        raise ValueError(f"csv: {path!r} holds no done cells")
    return records


def draw_figures(path, out_dir):
    """Draw :data:`FIGURES` from the CSV at ``path`` into ``out_dir``; return the files."""
    import os

    from theorylab.plots import li_li_map

    records = load_records(path)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for stem, func in FIGURES.items():
        fig = getattr(li_li_map, func)(records)
        out = os.path.join(out_dir, f"{stem}.png")
        fig.savefig(out, dpi=130)
        written.append(out)
    return written


def main(argv=None):
    """``python -m theorylab.sweep.ll_one_step figures CSV [--out DIR]``; the exit code."""
    import argparse
    import sys

    from .cli import check_output_dir, run_command

    parser = argparse.ArgumentParser(prog="python -m theorylab.sweep.ll_one_step",
                                     description="Figures of the one-step map from its CSV.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("figures", help="draw the map's figures from the exported CSV")
    p.add_argument("csv", metavar="CSV")
    p.add_argument("--out", default="figures", help="directory (default figures/)")

    def figures(args):
        check_output_dir(args.out, "--out")
        for path in draw_figures(args.csv, args.out):
            print(path)
        return 0

    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return run_command(figures, args, "ll-one-step figures")


if __name__ == "__main__":  # pragma: no cover - the make target's entry point
    raise SystemExit(main())
