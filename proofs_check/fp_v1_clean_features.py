"""V1: clean training is accurate, learns the features, and carries dense mixtures.

Paper [C]: clean training reaches > 99% clean accuracy (talk abstract); its
neurons hold the features plus small dense mixtures (abstract).  The per-neuron
measurements (dense ratio, alignment with M w*) are theorylab's operational
reading [D] of "small dense mixture" (spec 3.3(i), 5 V1).
"""

from __future__ import annotations

import numpy as np

from theorylab import metrics
from theorylab.pipelines.feature_purification import fp_clean as clean_stage

from ._papers import FP
from ._fp_common import REGIMES
from ._harness import Check, Criterion, convergence_measurements, register



def run(seed, params):
    # Clean training only, in the identity basis: its structure is the same in every
    # dictionary (the pipeline's rotation equivariance), so no adversarial stage is needed.
    clean, world, history, seconds = clean_stage(seed, params)
    s = metrics.feature_structure(clean.W, world.w_star)
    d = world.d
    test = world.sample(params.get("n_test", 1000), np.random.SeedSequence([seed, 0xC1EA]))
    return {
        **convergence_measurements({"clean": history}),
        "clean_accuracy": clean.accuracy(test.X, test.y),
        "sign_correct": float(np.mean(s["sign_correct"])),
        "coverage_fraction": s["coverage"] / d,
        "dense_ratio_median": float(np.median(s["dense_ratio"])),
        # alignment in units of a random direction's typical |cos| (1/sqrt(d))
        "dense_alignment_median": float(np.median(s["dense_alignment"])),
        "dense_alignment_z": float(np.median(s["dense_alignment"]) * np.sqrt(d)),
        "seconds_clean_training": seconds,
        "extra": {"ratio": s["dense_ratio"], "alignment": s["dense_alignment"]},
    }


def figure(results):
    from matplotlib.figure import Figure

    e = results[0]["extra"]
    fig = Figure(figsize=(9, 3.4))
    a1, a2 = fig.subplots(1, 2)
    a1.hist(e["ratio"], bins=40, color="tab:red", alpha=0.7)
    a1.set_xlabel("dense ratio ||v_i|| / |a_i|")
    a1.set_ylabel("neurons")
    a2.hist(e["alignment"], bins=40, color="tab:purple", alpha=0.7)
    a2.set_xlabel("dense alignment cos(v_i, M w*)")
    fig.suptitle("clean training: per-neuron dense mixtures (seed 0)", fontsize=10)
    return fig


CRITERIA = [
    Criterion("clean_accuracy", ">=", 0.99,
              "the paper's clean-accuracy statement (> 99%) [C]; 1000 test points resolve it"),
    Criterion("sign_correct", ">=", 0.99,
              "every neuron's main atom has the teacher's sign; 1% slack for neurons that "
              "never activate and keep their random init"),
    Criterion("coverage_fraction", ">=", 0.8,
              "most atoms are some neuron's main feature (m = 2d; pilot covered 94-100%)"),
    Criterion("dense_ratio_median", ">=", 0.1,
              "a dense mixture is present: the purified network has 0, the pilot measured "
              "0.57-1.37; 0.1 is far above rounding"),
    Criterion("dense_ratio_median", "<=", 1.0,
              "neurons are feature-selective (main coefficient dominates); the linear / "
              "no-feature-learning failure mode has ratio >> 1 (spec 5, failure modes)"),
    Criterion("dense_alignment_z", ">=", 5.0,
              "the dense part points along M w*: cos >= 5/sqrt(d), five times the typical "
              "|cos| of a random direction (pilot: cos 0.43-0.84)"),
]

for name in ("l2", "linf", "linf_dense"):
    register(Check(
        id=f"fp.v1_clean_features_{name}",
        paper=FP,
        claim="Clean training is accurate (> 99%), each neuron learns a dictionary feature with "
              "the teacher's sign, and carries a small dense mixture aligned with M w*.",
        provenance="[C]",
        regimes=REGIMES[name],
        criteria=CRITERIA,
        run=run,
        figure=figure,
        notes="Accuracy and 'dense mixtures' are the paper's [C]; the thresholds on the dense "
              "ratio and alignment operationalise them in theorylab's reconstructed model [D].",
    ))
