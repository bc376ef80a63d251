"""The Feature Purification checks can fail: broken learners must get a FAIL verdict.

Each check runs in its own quick regime with one parameter changed:
- ``clean_threshold_c = 0``: the clean network has threshold 0, i.e. it is linear;
- ``eps_train = 0``: "adversarial" training without perturbation;
- ``clean_learner = "purified"``: the purified oracle stands in for the clean network.
These are the mutations the issue names; the harness evaluates the same criteria
it uses in ``make check``.
"""

import pytest

from proofs_check import FAIL, PASS, evaluate, load_checks
from proofs_check._harness import Check, Criterion

REGISTRY = load_checks()

MUTATIONS = {
    "fp.v1_clean_features": {"clean_threshold_c": 0.0},
    "fp.v2_clean_nonrobust": {"clean_learner": "purified"},
    "fp.v3_adversarial_purifies": {"eps_train": 0.0},
    "fp.v4_principle": {"eps_train": 0.0},
    "fp.v4_init_correlation": {"lr": 1e-5},  # a learner that does not learn keeps its init
}


def _mutation(check_id):
    for prefix, override in MUTATIONS.items():
        if check_id.startswith(prefix):
            return dict(override)
    raise AssertionError(f"no mutation defined for {check_id}: every check needs one")


FP_IDS = sorted(cid for cid in REGISTRY if cid.startswith("fp."))


@pytest.mark.slow
@pytest.mark.parametrize("check_id", FP_IDS)
def test_check_fails_on_broken_learner(check_id):
    check = REGISTRY[check_id]
    params = dict(check.regimes["quick"], **_mutation(check_id))
    verdict, reason, results = evaluate(check, [check.run(0, params)])
    if check_id in PRECONDITION_BLOCKED:
        # The regime's precondition is not met on the certified side even for the real
        # learner (the report says INCONCLUSIVE): the claim criteria must still fail.
        claim = [r for r in results if r.criterion.kind == "claim"]
        assert any(r.status == FAIL for r in claim), f"{check_id}: no claim criterion failed"
        return
    assert verdict == FAIL, f"{check_id} gave {verdict} on a broken learner: {reason}"


# Pixel-space linf: the purified network's robustness over the whole grid cannot be
# certified (dense atoms make every interval ~sqrt(d) wider), so the window precondition
# of V2 is not met on the certified side; reported as INCONCLUSIVE in make check.
PRECONDITION_BLOCKED = {"fp.v2_clean_nonrobust_linf_dense"}


def test_every_fp_check_has_a_mutation():
    assert FP_IDS, "no fp checks registered"
    for cid in FP_IDS:
        _mutation(cid)


def test_verdict_rules():
    check = Check(id="t", paper="p", claim="c", provenance="[D]",
                  regimes={"quick": {}, "full": {}},
                  criteria=[Criterion("a", ">=", 1.0, "r"),
                            Criterion("b", "<=", 0.0, "r", kind="precondition")],
                  run=lambda seed, params: {})
    ok = {"a": 2.0, "b": 0.0}
    assert evaluate(check, [ok, ok, ok])[0] == PASS
    assert evaluate(check, [ok, {"a": 0.0, "b": 0.0}, ok])[0] == "INCONCLUSIVE"
    assert evaluate(check, [ok, {"a": 0.0, "b": 0.0}, {"a": 0.0, "b": 0.0}])[0] == FAIL
    assert evaluate(check, [{"a": 2.0, "b": 1.0}])[0] == "INCONCLUSIVE"   # precondition
    assert evaluate(check, [{"a": 0.0, "b": 1.0}])[0] == "INCONCLUSIVE"   # not judged
    assert evaluate(check, [{"a": float("nan"), "b": 0.0}])[0] == "INCONCLUSIVE"
    # missing on some seeds: not judged; missing on every seed: a mistake in the check
    assert evaluate(check, [ok, {"b": 0.0}])[0] == "INCONCLUSIVE"
    verdict, reason, _ = evaluate(check, [{"b": 0.0}, {"b": 0.0}])
    assert verdict == "ERROR" and "'a' was measured on no seed" in reason
