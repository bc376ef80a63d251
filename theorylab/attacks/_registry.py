"""The one name table of attacks: name -> :class:`Attack`.

Every attack module registers itself here when :mod:`theorylab.attacks` imports
it; training, the evaluation, the CLI and the checks resolve attacks by name
through :func:`get` (pynndescent's ``named_distances`` idea), so adding an attack
is one module plus its tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Attack", "register", "get", "names", "ATTACKS", "KINDS"]

KINDS = ("gradient", "gradient-free", "structured", "min-norm")


@dataclass(frozen=True)
class Attack:
    """A registered attack.

    Attributes
    ----------
    name : str
    run : callable
        ``run(model, X, y, eps, p, *, world=None, seed=0, **options) -> delta`` on
        arrays already validated by the model (no re-validation: the caller did
        it once at its boundary).  ``delta`` has the shape of ``X`` and
        ||delta||_p <= eps per sample.
    kind : {"gradient", "gradient-free", "structured", "min-norm"}
        "gradient-free" attacks flag gradient masking in the evaluation;
        "structured" ones follow a direction the theory predicts (need ``world``).
    norms : frozenset of float
        Norms it supports.
    options : dict
        Option names and defaults accepted by ``run`` (checked before work starts).
    needs_world : bool
    trains : bool
        Usable as the inner attack of adversarial training.
    check : callable, optional
        ``check(options) -> options``: validates option values (a ValueError naming
        the option) and returns them normalised; defaults are filled in first.
    radii : callable, optional
        Minimum-norm attacks: ``radii(model, X, y, p, *, seed=0, **options) -> (delta,
        radius)``, per sample the smallest perturbation found that breaks the point
        (radius inf where none was found).
    train_step : callable, optional
        Training attacks with a fused step: ``train_step(model, X, y, eps, p, *,
        seed=0, **options) -> (loss, scores, grad)``, the model's weight gradient at
        ``X + run(...)``, or None where the model has no such kernel (the trainer
        then attacks and takes the gradient itself); the same numbers either way.
    summary : str
        One line for ``--help`` and the reports.
    """

    name: str
    run: Callable
    kind: str
    norms: frozenset = frozenset((2.0, np.inf, 1.0))
    options: dict = field(default_factory=dict)
    needs_world: bool = False
    trains: bool = False
    check: Callable | None = None
    radii: Callable | None = None
    train_step: Callable | None = None
    summary: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "norms", frozenset(self.norms))

    def check_options(self, options):
        """Options with defaults filled in and values validated, before any work starts.

        Raises ``ValueError`` naming an option this attack does not take or a bad value.
        ``seed`` is accepted by every attack (deterministic ones ignore it).
        """
        unknown = sorted(set(options) - set(self.options) - {"seed"})
        if unknown:
            raise ValueError(f"attack {self.name!r} takes options {sorted(self.options)}, "
                             f"got unknown {unknown}")
        seed = {"seed": options["seed"]} if "seed" in options else {}
        full = {**self.options, **{k: v for k, v in options.items() if k != "seed"}}
        full = self.check(full) if self.check is not None else full
        if seed:
            from .._validation import as_generator

            as_generator(seed["seed"], "seed")
        return {**full, **seed}

    def check_norm(self, p):
        """Raise ``ValueError`` when the attack does not support norm ``p``."""
        if p not in self.norms:
            raise ValueError(f"attack {self.name!r} supports norms "
                             f"{sorted(str(n) for n in self.norms)}, got {p}")
        return p


ATTACKS = {}


def register(attack):
    """Add ``attack`` to the table (names are unique) and return it."""
    if attack.name in ATTACKS:
        raise ValueError(f"duplicate attack name {attack.name!r}")
    ATTACKS[attack.name] = attack
    return attack


def get(name):
    """The registered attack ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return ATTACKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"attack must be one of {sorted(ATTACKS)}, got {name!r}") from None


def names(*, kind=None, trains=None):
    """Registered attack names, optionally only those of ``kind`` or usable in training."""
    return sorted(n for n, a in ATTACKS.items()
                  if (kind is None or a.kind == kind) and (trains is None or a.trains == trains))
