"""The one spelling of each paper's name (the report groups checks by it)."""

FP = "Feature Purification (Allen-Zhu & Li, FOCS 2021)"
LL = "Li & Li (ICLR 2025)"

PAPERS = {
    FP: "Z. Allen-Zhu and Y. Li, Feature Purification: How Adversarial Training Performs "
        "Robust Deep Learning, FOCS 2021 (arXiv 2005.10190)",
    LL: "B. Li and Y. Li, Adversarial Training Can Provably Improve Robustness: Theoretical "
        "Analysis of Feature Learning Process Under Structured Data, ICLR 2025 "
        "(arXiv 2410.08503)",
}
