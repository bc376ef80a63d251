"""What one cell of a phase map runs: a claim's own pipeline, judged by the claim's own criteria.

A cell is (pipeline, d, k, training-length multiplier, norm, seed).  The regime a
cell runs is the claim's quick regime (``proofs_check`` check ``regimes["quick"]``)
with only these parameters changed:

* Feature Purification (:func:`fp_cell`): ``d`` and ``k`` of the sparse-coding
  world, clean steps ``T`` and FGM steps ``T_adv`` both multiplied by ``t_mult``;
  ``norms`` (default both "l2" and "linf") picks the checks' regimes (M = I, the
  quick regimes' radii, batch, learning rate and threshold schedule).  The
  checks V1-V4 of every norm run in the same process and share the cached
  stages, as the checks of one seed do in ``theorylab check``: one clean
  training (it does not depend on the norm), one FGM run per norm, the shared
  evaluations.
* Li & Li (:func:`ll_cell`): patch dimension ``d``, robust-feature sparsity
  ``s = k``, standard GD steps ``T_std`` (and for the adversarial claim the
  adversarial steps ``T_adv``) times ``t_mult``.  The adversarial claim is mapped in
  ``ll.adversarial_robust_warm_pgd`` (warm start, PGD-3: theorylab's addition; the
  paper's one-step algorithm at T = 10000 has its own map, ``make ll-one-step``); its radius
  keeps the quick regime's fraction of the erasure threshold beta / sqrt(d)
  (0.07 at d = 128, i.e. 0.07 sqrt(128 / d)), the rule by which the quick
  (d = 128, 0.07) and full (d = 256, 0.05) regimes were chosen.  The paper's
  one-step runs that the check reports without judging are left out: they are
  issue 17's map.

Each claim's measurements are judged exactly as the check judges one seed
(:func:`proofs_check._harness.evaluate` with the check's own
:class:`~proofs_check._harness.Criterion` list; no threshold is restated here),
and the cell returns, per claim ``<id>``: every scalar measurement as
``<id>/<key>``, each criterion's signed margin as ``<id>/margin/<criterion>``
(positive: holds), ``<id>/verdict`` and ``<id>/reason``.  A claim whose run
raises gets verdict ERROR with the error; the cell's other claims still count.
"""

from __future__ import annotations

import math
import time
import traceback

from .._harness import ERROR, evaluate

__all__ = ["fp_cell", "ll_cell", "FP_CLAIMS", "LL_CLAIMS", "cell_regime", "claim_ids",
           "judge", "margin_key", "run_claims"]

# FP: check-id stem -> (run order); the check id is f"{stem}_{norm}".  V1 first (clean only),
# then the claims that add FGM training and the evaluations.
FP_CLAIMS = ("fp.v1_clean_features", "fp.v4_principle", "fp.v2_clean_nonrobust",
             "fp.v3_adversarial_purifies")
FP_NORMS = ("l2", "linf")
LL_CLAIMS = {"standard": "ll.standard_nonrobust", "adversarial": "ll.adversarial_robust_warm_pgd"}


def _registry():
    from .. import load_checks

    return load_checks()


def margin_key(check_id, criterion):
    """Column of a criterion's margin, e.g. ``fp.v4_principle_l2/margin/principle_fraction>=0.8``."""
    return f"{check_id}/margin/{criterion.key}{criterion.op}{criterion.threshold:g}"


def claim_ids(pipeline, params):
    """The check ids a cell of ``pipeline`` ("fp" or "ll") with ``params`` judges."""
    if pipeline == "fp":
        return [f"{stem}_{norm}" for norm in params.get("norms", FP_NORMS)
                for stem in FP_CLAIMS]
    return [LL_CLAIMS[c] for c in params.get("claims", ("standard",))]


def _scaled(value, t_mult):
    return max(1, int(round(value * t_mult)))


def cell_regime(check, params):
    """The parameters ``check.run`` gets for a cell: its quick regime with d, k, T changed.

    Parameters
    ----------
    check : proofs_check.Check
    params : dict
        The cell's ``d``, ``k``, ``t_mult``.
    """
    regime = check.regimes[params.get("base", "quick")]
    base = dict(regime)
    d, k, t = params["d"], params["k"], params["t_mult"]
    if check.id.startswith("fp."):
        base.update(d=d, k=k, T=_scaled(base["T"], t), T_adv=_scaled(base["T_adv"], t))
    else:
        base.update(d=d, s=k, T_std=_scaled(base["T_std"], t))
        if check.id == LL_CLAIMS["adversarial"]:
            # The regime's radius as a fraction of the erasure threshold beta / sqrt(d).
            base.update(T_adv=_scaled(base["T_adv"], t), one_step=(),
                        eps_train=regime["eps_train"] * math.sqrt(regime["d"] / d))
    return base


def judge(check, measurements):
    """Verdict, reason and per-criterion margins of one seed's measurements."""
    verdict, reason, _ = evaluate(check, [measurements])
    margins = {margin_key(check.id, c): c.margin(measurements.get(c.key, math.nan))
               for c in check.criteria}
    return verdict, reason, margins


def _scalars(m):
    return {k: v for k, v in m.items() if k != "extra" and (
        isinstance(v, (int, float, str)) and not isinstance(v, bool))}


def run_claims(seed, params, ids, regime=cell_regime):
    """Run and judge the checks ``ids`` for one cell; the flat dict of the module docstring.

    ``regime(check, params)`` gives the parameters each check runs with (default
    :func:`cell_regime`; the scaling paths pass their own).
    """
    registry = _registry()
    out = {}
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    for cid in ids:
        check = registry[cid]
        t0 = time.perf_counter()
        try:
            m = check.run(seed, regime(check, params))
        except Exception as exc:  # the claim's own error; the other claims still count
            out[f"{cid}/verdict"] = ERROR
            out[f"{cid}/reason"] = f"{type(exc).__name__}: {exc}"
            out[f"{cid}/traceback"] = traceback.format_exc()
            continue
        verdict, reason, margins = judge(check, m)
        out.update({f"{cid}/{k}": v for k, v in _scalars(m).items()})
        out.update(margins)
        out[f"{cid}/verdict"] = verdict
        out[f"{cid}/reason"] = reason
        out[f"{cid}/seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - t_cpu
    out["wall_seconds"] = time.perf_counter() - t_wall
    return out


def _check_params(params, pipeline):
    for name in ("d", "k"):
        v = params.get(name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    t = params.get("t_mult")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
        raise ValueError(f"t_mult must be a number > 0, got {t!r}")
    if pipeline == "fp":
        norms = params.get("norms", FP_NORMS)
        if not isinstance(norms, (list, tuple)) or not norms or set(norms) - set(FP_NORMS):
            raise ValueError(f"norms must be a non-empty subset of {list(FP_NORMS)}, got "
                             f"{norms!r}")
    if pipeline == "ll":
        bad = sorted(set(params.get("claims", ("standard",))) - set(LL_CLAIMS))
        if bad:
            raise ValueError(f"claims: unknown {bad}; known: {sorted(LL_CLAIMS)}")


def fp_cell(seed, params):
    """One cell of the Feature Purification map: V1-V4 of every norm of ``params["norms"]``.

    Parameters
    ----------
    seed : int
    params : dict
        ``d``, ``k``, ``t_mult``; optional ``norms`` (default ``["l2", "linf"]``)
        and ``base`` (the regime varied, default "quick").

    Returns
    -------
    dict
        Per claim its measurements, margins, verdict and reason (module
        docstring); ``cpu_seconds`` and ``wall_seconds`` of the whole cell.
    """
    _check_params(params, "fp")
    return run_claims(seed, params, claim_ids("fp", params))


def ll_cell(seed, params):
    """One cell of the Li & Li map: the claims of ``params["claims"]`` (default standard).

    Parameters
    ----------
    seed : int
    params : dict
        ``d``, ``k`` (the sparsity s of the robust features), ``t_mult``;
        ``claims``: a subset of ``["standard", "adversarial"]``.
    """
    _check_params(params, "ll")
    return run_claims(seed, params, claim_ids("ll", params))
