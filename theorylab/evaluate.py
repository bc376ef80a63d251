"""The robustness evaluation (being written)."""
