"""The image checks can fail: each gets a FAIL verdict from a deliberately broken learner.

Each check runs its quick regime (shipped digits, seed 0) with one parameter changed:
- ``eps_train = 0``: "adversarial" fine-tuning / training without perturbation (the
  D_R / D_NR runs keep ``eps_nr = 0.5`` so that D_NR itself is still built);
- ``lowrank_eps = 0``: the low-rank update is trained on clean points only, while full
  fine-tuning stays adversarial.
The harness evaluates the same criteria as ``theorylab check``.
"""

import pytest

from proofs_check import FAIL, evaluate, load_checks

pytest.importorskip("sklearn")

REGISTRY = load_checks()

MUTATIONS = {
    "img.principle_l2": {"eps_train": 0.0},
    "img.principle_linf": {"eps_train": 0.0},
    "img.principle_cnn": {"eps_train": 0.0, "eps_nr": 0.5},
    "img.low_rank_l2": {"lowrank_eps": 0.0},
    "img.low_rank_linf": {"lowrank_eps": 0.0},
    "img.nonrobust_dataset": {"eps_train": 0.0, "eps_nr": 0.5},
    "img.robust_dataset": {"eps_train": 0.0, "eps_nr": 0.5},
}

IMG_IDS = sorted(cid for cid in REGISTRY if cid.startswith("img."))


def test_every_img_check_has_a_mutation():
    assert IMG_IDS, "no img checks registered"
    assert set(IMG_IDS) == set(MUTATIONS)


@pytest.mark.slow
@pytest.mark.parametrize("check_id", IMG_IDS)
def test_check_fails_on_broken_learner(check_id):
    check = REGISTRY[check_id]
    params = dict(check.regimes["quick"], **MUTATIONS[check_id])
    verdict, reason, _ = evaluate(check, [check.run(0, params)])
    assert verdict == FAIL, f"{check_id} gave {verdict} on a broken learner: {reason}"
