"""Figures of the map of Li & Li's one-step algorithm (issue 17).  Every function returns a Figure.

They read *records*, one per cell and seed, as the sweep's CSV gives them
(:func:`theorylab.sweep.ll_one_step.load_records`): ``{"cell": overrides of the
base cell, "run_seed": int, "metrics": dict}``.  A cell's *knob* is what its
overrides change (:func:`knob_of`): the base cell has none, a one-factor cell one,
the eta x sigma_0 x eps box three.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

__all__ = ["knob_of", "KNOBS", "one_step_map", "one_step_box", "one_step_trajectories",
           "escape_scaling", "WORKS"]

#: Issue 17's bar for "works", on every seed.
WORKS = dict(robust=0.9, clean=0.98)

# One-factor knobs in panel order: (name, label, value of a cell's overrides -> x label).
KNOBS = (
    ("lr_adv", r"learning rate $\eta$", lambda c: f"{c['lr_adv']:g}"),
    ("eps_rel", r"$\varepsilon$ / erasure threshold", lambda c: f"{c['eps_rel']:g}"),
    ("ramp_frac", r"$\varepsilon$ ramp (fraction of T)", lambda c: f"{c['ramp_frac']:g}"),
    ("ascent", "ascent step", lambda c: _ascent_label(c)),
    ("init_scale", r"init scale $\sigma_0$", lambda c: f"{c['init_scale']:g}"),
    ("n_train", r"$n_{train}$", lambda c: f"{c['n_train']}"),
    ("variant", "threat / layout", lambda c: "B (l2)"),
)
BASE_LABELS = {"lr_adv": "0.5", "eps_rel": "0.8", "ramp_frac": "0", "ascent": "sign, loss",
               "init_scale": "0.01", "n_train": "256", "variant": "A (linf)"}
BOX = ("lr_adv", "init_scale", "eps_rel")


def _ascent_label(c):
    form = {"steepest": "sign", "sign": "sign", "l2": "l2", "gradient": "gamma g"}[
        c.get("ascent_form", "steepest")]
    if form == "gamma g":
        form = f"{c['step_size_train']:g} g"
    return f"{form}, {c.get('ascent_objective', 'loss')}"


def _order(name, cell):
    # Columns of a panel: eta from large to small (towards the theory's regime), numbers
    # ascending, the rest as listed.
    value = cell.get(name)
    if not isinstance(value, (int, float)):
        return 0.0
    return -value if name == "lr_adv" else value


def knob_of(cell):
    """``"base"``, a knob name of :data:`KNOBS`, ``"box"`` or ``"other"`` for a cell's overrides.

    ``T_cap`` is the compute budget, not a knob: a cell that only raises it beside one
    knob belongs to that knob.
    """
    keys = set(cell) - {"T_cap"}
    if not keys:
        return "base"
    if "layout" in keys:
        return "variant"
    if keys <= {"ascent_form", "ascent_objective", "step_size_train"}:
        return "ascent"
    if keys == set(BOX):
        return "box"
    if len(keys) == 1:
        return next(iter(keys))
    return "other"


def _by_cell(records):
    # {json of the cell's overrides: (cell, [metrics per seed, in run_seed order])}.
    import json

    out = {}
    for r in sorted(records, key=lambda r: r["run_seed"]):
        key = json.dumps(r["cell"], sort_keys=True)
        out.setdefault(key, (r["cell"], []))[1].append(r["metrics"])
    return out


def _works(m):
    return (m["robust_attack"] >= WORKS["robust"] and m["pgd20_accuracy"] >= WORKS["robust"]
            and m["clean_accuracy"] >= WORKS["clean"] and m["gamma_u"] > m["gamma_v"])


def _strip(ax, xs, values, color, marker, label, dx):
    # One marker per seed at categorical position x + dx, the median as a short bar.
    for i, (x, vals) in enumerate(zip(xs, values)):
        vals = np.asarray(vals, dtype=float)
        ax.plot(np.full(vals.size, x + dx), vals, marker, color=color, ms=4, alpha=0.75,
                ls="none", label=label if i == 0 else None)
        if vals.size:
            ax.plot([x + dx - 0.12, x + dx + 0.12], [np.median(vals)] * 2, color=color, lw=1.5)


def one_step_map(records):
    """One panel per knob: robust accuracy at the training radius (top), features (bottom).

    Top: per seed, the attack side of :func:`theorylab.evaluate.robustness` (every attack,
    PGD-20 and APGD among them), PGD-20 alone, the certified side, and clean accuracy;
    the base cell is the first column of every panel; a green column works on every seed.
    Bottom: final Gamma_u and Gamma_v, and the catastrophic-overfitting gap (one-step
    minus PGD accuracy on the training set, at the end).
    """
    cells = _by_cell(records)
    base = [v for v in cells.values() if knob_of(v[0]) == "base"]
    panels = [k for k in KNOBS if any(knob_of(c) == k[0] for c, _ in cells.values())]
    fig = Figure(figsize=(2.3 * max(1, len(panels)) + 0.8, 6.4))
    axes = fig.subplots(2, max(1, len(panels)), squeeze=False, sharey="row")
    for j, (name, label, fmt) in enumerate(panels):
        cols = base + sorted((v for v in cells.values() if knob_of(v[0]) == name),
                             key=lambda v: _order(name, v[0]))
        labels = [BASE_LABELS[name] + "\n(base)"] + [
            fmt(c) + ("\n(T capped)" if any(m.get("T_capped") for m in ms) else "")
            for c, ms in cols[len(base):]]
        xs = np.arange(len(cols))
        top, bot = axes[0, j], axes[1, j]
        for x, (_, ms) in zip(xs, cols):
            if ms and all(_works(m) for m in ms):
                top.axvspan(x - 0.45, x + 0.45, color="tab:green", alpha=0.12, lw=0)
        get = lambda key: [[m[key] for m in ms] for _, ms in cols]  # noqa: E731
        _strip(top, xs, get("robust_attack"), "tab:blue", "o", "strongest attack", -0.2)
        _strip(top, xs, get("pgd20_accuracy"), "tab:cyan", "^", "PGD-20", 0.0)
        _strip(top, xs, get("robust_certified"), "tab:purple", "s", "certified", 0.2)
        _strip(top, xs, get("clean_accuracy"), "0.4", "_", "clean", 0.0)
        top.axhline(WORKS["robust"], color="k", lw=0.7, ls=":")
        top.set_ylim(-0.03, 1.03)
        top.set_title(label, fontsize=8)
        _strip(bot, xs, get("gamma_u"), "tab:blue", "o", r"$\Gamma_u$", -0.2)
        _strip(bot, xs, get("gamma_v"), "tab:red", "v", r"$\Gamma_v$", 0.0)
        twin = bot.twinx()
        _strip(twin, xs, get("co_gap_final"), "tab:orange", "x", "overfitting gap", 0.2)
        twin.set_ylim(-0.05, 1.05)
        if j < len(panels) - 1:
            twin.set_yticklabels([])
        else:
            twin.set_ylabel("one-step - PGD train acc.", fontsize=7, color="tab:orange")
        for ax in (top, bot):
            ax.set_xticks(xs)
            ax.set_xticklabels(labels, fontsize=6.5)
            ax.set_xlim(-0.6, len(cols) - 0.4)
            ax.grid(alpha=0.3, axis="y")
        if j == 0:
            top.set_ylabel("accuracy at the training radius", fontsize=8)
            bot.set_ylabel("final correlation", fontsize=8)
            top.legend(fontsize=6, loc="lower left")
            handles = bot.get_legend_handles_labels()
            th = twin.get_legend_handles_labels()
            bot.legend(handles[0] + th[0], handles[1] + th[1], fontsize=6, loc="upper left")
    fig.suptitle("Li & Li's one-step algorithm from scratch, one knob at a time (3 seeds; "
                 "green: works on every seed)", fontsize=9)
    fig.tight_layout()
    return fig


def one_step_box(records):
    """The eta x sigma_0 x eps grid: one table per eps, cells coloured by the worst seed.

    Every cell of the map whose overrides are a subset of (eta, sigma_0, eps) is
    placed (the base, its one-factor neighbours and the box).  Text: worst-seed
    attack-side accuracy, and how many seeds work.
    """
    cells = [v for v in _by_cell(records).values() if set(v[0]) - {"T_cap"} <= set(BOX)]
    defaults = {"lr_adv": 0.5, "init_scale": 0.01, "eps_rel": 0.8}
    full = [({**defaults, **c}, ms) for c, ms in cells]
    epss = sorted({c["eps_rel"] for c, _ in full})
    etas = sorted({c["lr_adv"] for c, _ in full}, reverse=True)
    sigmas = sorted({c["init_scale"] for c, _ in full})
    fig = Figure(figsize=(3.0 * max(1, len(epss)) + 0.6, 3.3))
    axes = fig.subplots(1, max(1, len(epss)), squeeze=False)[0]
    from matplotlib import colormaps

    cmap = colormaps["RdYlGn"]
    for ax, e in zip(axes, epss):
        grid = np.full((len(etas), len(sigmas)), np.nan)
        text = {}
        for c, ms in full:
            if c["eps_rel"] != e:
                continue
            i, j = etas.index(c["lr_adv"]), sigmas.index(c["init_scale"])
            worst = min(m["robust_attack"] for m in ms)
            grid[i, j] = worst
            text[i, j] = f"{worst:.2f}\n{sum(_works(m) for m in ms)}/{len(ms)} work"
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for (i, j), t in text.items():
            ax.text(j, i, t, ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(sigmas)))
        ax.set_xticklabels([f"{s:g}" for s in sigmas], fontsize=7)
        ax.set_yticks(range(len(etas)))
        ax.set_yticklabels([f"{v:g}" for v in etas], fontsize=7)
        ax.set_xlabel(r"init scale $\sigma_0$", fontsize=8)
        ax.set_ylabel(r"learning rate $\eta$", fontsize=8)
        ax.set_title(fr"$\varepsilon$ = {e:g} x erasure threshold", fontsize=8)
    fig.suptitle("worst-seed robust accuracy (strongest attack) at the training radius",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _curve(m, name):
    return np.asarray(m[f"curves_{name}"], dtype=float)


def one_step_trajectories(records, *, knob="lr_adv"):
    """Training curves of the base cell and its ``knob`` neighbours against eta x t.

    Panels: Gamma_u (solid) and Gamma_v (dashed); the overfitting gap (one-step minus
    PGD accuracy on the training set); the one-step (solid) and PGD (dashed) training
    losses.  One colour per knob value, one line per seed.  On the eta x t axis the
    gradient-flow limit makes curves of different eta coincide.
    """
    cells = [v for v in _by_cell(records).values() if knob_of(v[0]) in ("base", knob)]
    cells.sort(key=lambda v: -v[0].get(knob, 0.5 if knob == "lr_adv" else 0))
    fig = Figure(figsize=(12.0, 3.6))
    ax_g, ax_gap, ax_l = fig.subplots(1, 3)
    for ci, (c, ms) in enumerate(cells):
        color = f"C{ci}"
        lab = f"{knob} = {c[knob]:g}" if knob in c else "base"
        for si, m in enumerate(ms):
            eta = c.get("lr_adv", 0.5)
            t = _curve(m, "step") * eta
            ls = ["-", "--", ":"][si % 3]
            ax_g.plot(t, np.maximum(_curve(m, "gamma_u"), 1e-3), color=color, lw=1, ls="-",
                      label=lab if si == 0 else None)
            ax_g.plot(t, np.maximum(_curve(m, "gamma_v"), 1e-3), color=color, lw=0.8,
                      ls="--")
            gap = _curve(m, "train_accuracy") - _curve(m, "train_pgd_accuracy")
            ax_gap.plot(t, gap, color=color, lw=1, ls=ls,
                        label=f"{lab}, seed {si}" if ci == 0 or si == 0 else None)
            ax_l.plot(t, _curve(m, "loss"), color=color, lw=1, ls="-")
            ax_l.plot(t, _curve(m, "train_pgd_loss"), color=color, lw=0.8, ls="--")
    ax_g.set_yscale("log")
    ax_g.set_ylabel(r"$\Gamma_u$ (solid), $\Gamma_v$ (dashed)", fontsize=8)
    ax_g.legend(fontsize=6.5)
    ax_gap.set_ylabel("one-step minus PGD-20 accuracy, training set", fontsize=8)
    ax_gap.set_ylim(-0.1, 1.05)
    ax_gap.legend(fontsize=5.5, ncol=2)
    ax_l.set_yscale("log")
    ax_l.set_ylabel("training loss: one-step (solid), PGD-20 (dashed)", fontsize=8)
    for ax in (ax_g, ax_gap, ax_l):
        ax.set_xlabel(r"$\eta\, t$ (time of the gradient flow)", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("one-step training from scratch: features, overfitting gap and losses "
                 "against eta x t (line style: seed)", fontsize=9)
    fig.tight_layout()
    return fig


def escape_scaling(records):
    """Measured escape step (every class's Gamma_u past rho) against the spec's prediction.

    x: 1 / (eta alpha^q sigma_0^(q-2)); y: the first logged step with every class's
    Gamma_u >= rho.  One dot per seed and cell (variant A, no ramp, the base's radius
    0.8 x the erasure threshold; the radius moves the escape too), the fitted log-log
    slope and the median ratio in the title; a slope of 1 means the prediction's scaling
    holds up to a constant.
    """
    xs, ys, cs = [], [], []
    for c, ms in _by_cell(records).values():
        if set(c) - set(BOX) - {"T_cap"} or c.get("eps_rel", 0.8) != 0.8:
            continue  # eta and sigma_0 only: the radius changes the escape too
        for m in ms:
            if math.isfinite(m["escape_step"]):
                xs.append(m["escape_time_predicted"])
                ys.append(m["escape_step"])
                cs.append(c.get("lr_adv", 0.5))
    fig = Figure(figsize=(5.0, 3.8))
    ax = fig.add_subplot()
    if xs:
        x, y = np.asarray(xs), np.asarray(ys)
        sc = ax.scatter(x, y, c=np.log10(cs), cmap="viridis", s=18)
        cb = fig.colorbar(sc, ax=ax)
        cb.set_label(r"$\log_{10}\eta$", fontsize=8)
        title = ""
        if np.unique(x).size > 1:
            slope = np.polyfit(np.log(x), np.log(y), 1)[0]
            title = f"fitted slope {slope:.2f}, "
        ratio = float(np.median(y / x))
        title += f"median escape / prediction = {ratio:.1f}"
        xx = np.geomspace(x.min() / 1.3, x.max() * 1.3, 20)
        ax.plot(xx, ratio * xx, "k--", lw=0.8, label=f"{ratio:.1f} x prediction")
        ax.set_xscale("log")
        ax.set_yscale("log")
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short decades
        ax.legend(fontsize=7)
        ax.set_title(title, fontsize=8)
    ax.set_xlabel(r"prediction $1/(\eta\,\alpha^q\sigma_0^{q-2})$ (steps)", fontsize=8)
    ax.set_ylabel(r"measured escape step (all classes $\Gamma_u \geq \rho$)", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig
