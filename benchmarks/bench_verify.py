"""The robustness sandwich on the quick Feature Purification regimes, and what it costs.

Per regime (l2, linf, linf_dense), seed and network (FGM-trained, clean, purified
oracle), on the full 1000-point test set at eps_eval: PGD-20 alone, the strongest
attack (the whole suite), the certified and exact accuracies, the unresolved
count, and how many points each attack alone breaks (attribution mode: every
attack on every point).  Timings, as ratios within one run: certifying the 1000
points against one PGD-20 run on them, and the exact linf solve of all 1000.

    python -m benchmarks.bench_verify [--seeds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import numpy as np

from theorylab import attacks, verify
from theorylab._json import to_jsonable
from theorylab._kernels.threads import limit_threads
from theorylab.evaluate import robustness
from theorylab.pipelines import fp_run

from proofs_check._evaluation import CHECK_BUDGET
from proofs_check._fp_common import EXACT, REGIMES

NETWORKS = ("adv", "clean", "oracle")


def _best_of(fn, rounds=3):
    best = np.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def one(regime, seed):
    p = dict(REGIMES[regime]["quick"])
    run = fp_run(seed, p)
    X, y, eps, norm = run.test.X, run.test.y, p["eps_eval"], p["norm"]
    grid = [g for g in p["grid"] if g <= eps + 1e-12]
    out = {}
    for name in NETWORKS:
        model = getattr(run, name)
        exact = [eps] if name in EXACT[regime] else []
        t0 = time.perf_counter()
        res = robustness(model, X, y, grid, norm, world=run.world, budget=CHECK_BUDGET,
                         exact=exact, seed=seed)
        seconds = time.perf_counter() - t0
        # Every attack on every clean-correct point at eps_eval itself.
        full = robustness(model, X, y, [eps], norm, world=run.world, budget=CHECK_BUDGET,
                          attribution=True, seed=seed)
        pgd = attacks.robust_accuracy(model, X, y, eps, norm, "pgd", steps=20)
        i = res.index(eps)
        out[name] = {"pgd20": pgd, "strongest": float(res.attack_accuracy[i]),
                     "strongest_attribution": float(full.attack_accuracy[0]),
                     "certified": float(res.certified_accuracy[i]),
                     "exact": float(res.exact_accuracy[i]), "unresolved": int(res.unresolved[i]),
                     "masking": int(res.masking[i]), "seconds": seconds,
                     "exact_solved": bool(exact),
                     "broken_alone": {k: int(v[0].sum()) for k, v in full.broken_by.items()},
                     "misclassified": int((~full.clean_correct).sum())}
    adv = run.adv
    Xc, yc = adv.check_Xy(X, y)
    t_pgd = _best_of(lambda: attacks.pgd(adv, Xc, yc, eps, norm, steps=20))
    t_cert = _best_of(lambda: verify.certified_margin(adv, Xc, yc, eps, norm))
    timing = {"pgd20_s": t_pgd, "certify_s": t_cert, "certify_over_pgd20": t_cert / t_pgd}
    if regime == "linf":
        t0 = time.perf_counter()
        ex = verify.exact_margin(adv, Xc, yc, eps, norm, decide=True)
        timing["exact_linf_1000_s"] = time.perf_counter() - t0
        timing["exact_linf_unresolved"] = int(ex.unresolved.sum())
    return {"networks": out, "timing": timing}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--regimes", nargs="+", default=["linf", "l2", "linf_dense"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    results = {}
    with limit_threads(blas_threads=1):
        for regime in args.regimes:
            for seed in range(args.seeds):
                results[f"{regime}/seed{seed}"] = one(regime, seed)
                print(regime, seed, json.dumps(to_jsonable(results[f"{regime}/seed{seed}"])),
                      flush=True)
    path = args.json or os.path.join(os.path.dirname(__file__), "results",
                                     f"verify_{datetime.date.today().isoformat()}.json")
    with open(path, "w") as fh:
        json.dump(to_jsonable(results), fh, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
