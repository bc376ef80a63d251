"""The one robustness evaluation: attacks, certificates and exact answers as a sandwich.

For a model, points and a grid of radii, :func:`robustness` returns per point
and radius a verdict, *broken* (a witness inside the ball, re-checked on the
model, margin <= 0: a tie is an error), *certified* (a sound lower bound on the
worst-case margin is > 0, from a certificate or an exact solve) or *unresolved*
(neither, within the budget: always reported, never dropped), and the curves

    certified accuracy  <=  exact accuracy  <=  attack accuracy,

``certified_accuracy`` (the sound lower side), ``attack_accuracy`` (the upper
side: the fraction no attack broke) and ``exact_accuracy`` (equal to both where
nothing is unresolved, NaN elsewhere).  Claims of robustness are judged on the
lower side, claims of non-robustness on the upper side (witnesses).

Order of work per radius (cheap first, every point attacked only while it
stands): points broken at a smaller radius stay broken (their witness is in the
larger ball); a minimum-norm attack, run once, breaks a point at every radius
above its witness's norm; the certificate then settles the points it can; the
attacks run on what remains (gradient attacks first, the gradient-free attack
last, so a point that only it breaks is a *gradient-masking* flag); an exact
solve, where asked, decides the rest.  ``attribution=True`` instead runs every
attack on every standing point (for "how many points did each attack break",
and to assert that no certified point is ever broken).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import attacks as _attacks
from . import verify as _verify
from ._validation import as_generator, check_bool, check_instance, check_norm, norm_name
from .models._base import Learner
from .attacks.curves import check_grid, tau50

__all__ = ["robustness", "Robustness", "Budget", "BROKEN", "CERTIFIED", "UNRESOLVED",
           "DEFAULT_ATTACKS", "SoundnessError"]

BROKEN, CERTIFIED, UNRESOLVED = 0, 1, 2
VERDICTS = {BROKEN: "broken", CERTIFIED: "certified", UNRESOLVED: "unresolved"}
# Cheap to dear; "dense" joins when a world is given.  "fmn" runs once for all radii.
DEFAULT_ATTACKS = ("fmn", "fgm", "pgd", "apgd", "square")


class SoundnessError(RuntimeError):
    """A certified point was broken by a re-checked witness: a certificate (or a solver) is wrong."""


@dataclass(frozen=True)
class Budget:
    """How much work the evaluation may spend (per radius, per point).

    Attributes
    ----------
    pgd_steps : int
        PGD steps (from 0, step 2.5 eps / steps).
    apgd_iters, apgd_restarts : int
    square_queries : int
    fmn_steps : int
    crown_iters : int
        Slope-optimisation steps of the threshold network's certificate.
    time_limit : float
        Seconds per point of an exact solve: a safety net only (it depends on the
        machine; the points it cuts short are counted in :attr:`Robustness.clock`).
    node_limit : int
        Branch-and-bound nodes per point of an exact solve (l2 branch and bound,
        HiGHS in linf): the deterministic per-point budget.
    exact_nodes : int or None
        Nodes for all exact solves at one radius (a point costs at least 1); points not
        reached stay unresolved (reported).  Deterministic: the same points are resolved
        on every run and machine.  None: no limit.
    exact_time : float or None
        Seconds for all exact solves at one radius, as ``exact_nodes`` but by the clock:
        a safety net, counted in :attr:`Robustness.clock` when it fires.  None: no limit.
    """

    pgd_steps: int = 20
    apgd_iters: int = 100
    apgd_restarts: int = 1
    square_queries: int = 1000
    fmn_steps: int = 100
    crown_iters: int = 20
    time_limit: float = 10.0
    node_limit: int = 2000
    exact_nodes: int | None = None
    exact_time: float | None = None

    def options(self, name):
        """Options of the attack ``name`` under this budget."""
        return {"pgd": {"steps": self.pgd_steps}, "apgd": {"iters": self.apgd_iters,
                                                           "restarts": self.apgd_restarts},
                "square": {"queries": self.square_queries},
                "fmn": {"steps": self.fmn_steps}}.get(name, {})


@dataclass
class Robustness:
    """What :func:`robustness` found (arrays over the grid ``eps`` and the N points).

    Attributes
    ----------
    eps : (R,) array
    norm : str
    verdict : (R, N) int8 array
        BROKEN (0), CERTIFIED (1) or UNRESOLVED (2).
    by_exact : (R, N) bool array
        Verdicts settled by the exact solver (not the certificate or an attack).
    broken_by : dict attack -> (R, N) bool array
        Which attack's witness broke the point at that radius (the first one in
        cascade mode; every one with ``attribution``).
    witness_norm : (N,) array
        Norm of the smallest re-checked witness found (inf where none).
    certified_radius : (N,) array
        Largest grid radius certified (0 where none).
    clean_correct : (N,) bool array
    masking : (R,) int array
        Points broken only by the gradient-free attack at that radius.
    clock : (R,) int array
        Points whose exact solve a wall-clock safety net cut short at that radius
        (0 unless a time limit fired): the only verdicts that can change between runs.
    methods : dict
        Attacks run, whether a certificate / exact solver was available, budget.
    """

    eps: np.ndarray
    norm: str
    verdict: np.ndarray
    by_exact: np.ndarray
    broken_by: dict
    witness_norm: np.ndarray
    certified_radius: np.ndarray
    clean_correct: np.ndarray
    masking: np.ndarray
    methods: dict = field(default_factory=dict)
    clock: np.ndarray | None = None

    def __post_init__(self):
        if self.clock is None:
            self.clock = np.zeros(len(self.eps), dtype=np.int64)

    @property
    def clean_accuracy(self):
        return float(np.mean(self.clean_correct))

    @property
    def attack_accuracy(self):
        """Upper side: the fraction of points no attack broke, per radius."""
        return np.mean(self.verdict != BROKEN, axis=1)

    @property
    def certified_accuracy(self):
        """Lower side: the fraction proven robust (certificate or exact solve), per radius."""
        return np.mean(self.verdict == CERTIFIED, axis=1)

    @property
    def unresolved(self):
        """Number of points neither broken nor proven robust, per radius."""
        return np.sum(self.verdict == UNRESOLVED, axis=1)

    @property
    def exact_accuracy(self):
        """The robust accuracy itself where every point is resolved, NaN elsewhere."""
        acc = self.certified_accuracy.astype(float)
        return np.where(self.unresolved == 0, acc, np.nan)

    def attack_only_accuracy(self, name):
        """Fraction of points that attack ``name`` alone did not break (attribution mode)."""
        return np.mean(~self.broken_by[name], axis=1)

    def index(self, eps):
        """Index of grid radius ``eps`` (ValueError when it is not on the grid)."""
        idx = np.flatnonzero(np.isclose(self.eps, eps, rtol=1e-9, atol=0))
        if idx.size == 0:
            raise ValueError(f"eps={eps} is not on the grid {self.eps.tolist()}")
        return int(idx[0])

    def at(self, eps):
        """The sandwich at one grid radius: attack / certified / exact / unresolved."""
        i = self.index(eps)
        return {"attack": float(self.attack_accuracy[i]),
                "certified": float(self.certified_accuracy[i]),
                "exact": float(self.exact_accuracy[i]), "unresolved": int(self.unresolved[i]),
                "masking": int(self.masking[i]), "clock": int(self.clock[i])}

    @property
    def tau50_attack(self):
        return tau50(self.eps, self.attack_accuracy, self.clean_accuracy)

    @property
    def tau50_certified(self):
        return tau50(self.eps, self.certified_accuracy, self.clean_accuracy)

    def to_dict(self):
        """Curves and counts as plain lists (JSON through theorylab._json)."""
        return {"eps": self.eps.tolist(), "norm": self.norm,
                "clean_accuracy": self.clean_accuracy,
                "attack_accuracy": self.attack_accuracy.tolist(),
                "certified_accuracy": self.certified_accuracy.tolist(),
                "exact_accuracy": self.exact_accuracy.tolist(),
                "unresolved": self.unresolved.tolist(), "masking": self.masking.tolist(),
                "clock": self.clock.tolist(),
                "broken_by": {k: v.sum(axis=1).tolist() for k, v in self.broken_by.items()},
                "tau50_attack": self.tau50_attack, "tau50_certified": self.tau50_certified,
                "methods": self.methods}


def _check_attacks(names, p, world):
    if isinstance(names, str):
        names = (names,)
    out = []
    for name in names:
        spec = _attacks.get(name)
        if p not in spec.norms:
            continue  # e.g. an l2-only attack in linf: not applicable, not an error
        if spec.needs_world and world is None:
            raise ValueError(f"attacks: {name!r} needs world=")
        out.append(spec)
    return out


def _exact_radii(exact, grid):
    # exact: False, True (every radius) or a sequence of grid radii.
    if isinstance(exact, (bool, np.bool_)):
        return np.full(grid.size, bool(exact))
    if np.size(exact) == 0:
        return np.zeros(grid.size, dtype=bool)
    try:
        want = np.sort(np.asarray(exact, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"exact must be True, False or a sequence of radii on eps_grid, got "
                         f"{exact!r}") from None
    want = check_grid(want, "exact")
    mask = np.zeros(grid.size, dtype=bool)
    for e in want:
        hit = np.flatnonzero(np.isclose(grid, e, rtol=1e-9, atol=0))
        if hit.size == 0:
            raise ValueError(f"exact: radius {e} is not on eps_grid {grid.tolist()}")
        mask[hit[0]] = True
    return mask


def robustness(model, X, y, eps_grid, norm, *, attacks=None, certify=True, exact=False,
               world=None, budget=None, seed=0, attribution=False, progress=False):
    """Attack, certify and (optionally) solve exactly over a grid of radii.

    Parameters
    ----------
    model : learner (:mod:`theorylab.models`)
    X, y : arrays
        Points and labels, validated once here.
    eps_grid : sequence of float
        Strictly increasing radii >= 0.
    norm : {2, inf}
    attacks : sequence of str, optional
        Registered attacks (:func:`theorylab.attacks.names`); default
        :data:`DEFAULT_ATTACKS` plus "dense" when ``world`` is given.  Attacks
        that do not support the norm are skipped (listed in ``methods``).
    certify : bool, default True
        Use the model's certificate (or closed-form worst case) where it has one.
    exact : bool or sequence of float, default False
        Solve exactly the points left unresolved: at every radius (True) or at
        the listed grid radii.
    world : world, optional
        For the structured ("dense") attack.
    budget : Budget, optional
    seed : int, SeedSequence or Generator
        Randomness of the attacks (one child stream per attack and radius).
    attribution : bool, default False
        Run every attack on every standing point (per-attack counts; certified
        points are attacked too and a break raises :class:`SoundnessError`).
    progress : bool, default False
        A tqdm bar over the radii.

    Returns
    -------
    Robustness
    """
    p = check_norm(norm, allowed=(2.0, np.inf))
    grid = check_grid(eps_grid)
    check_instance("model", model, Learner)
    X, y = model.check_Xy(X, y)
    budget = Budget() if budget is None else budget
    if not isinstance(budget, Budget):
        raise ValueError(f"budget must be a theorylab.evaluate.Budget, got {type(budget).__name__}")
    certify = check_bool("certify", certify)
    attribution = check_bool("attribution", attribution)
    progress = check_bool("progress", progress)
    names = DEFAULT_ATTACKS + (("dense",) if world is not None else ()) if attacks is None \
        else attacks
    specs = _check_attacks(names, p, world)
    options = {s.name: s.check_options(budget.options(s.name)) for s in specs}
    do_exact = _exact_radii(exact, grid)
    caps = model.capabilities
    # A closed-form worst case answers every point exactly: no attack needed (attribution
    # still runs them, to compare).
    closed = certify and p in caps.exact
    can_certify = certify and (p in caps.exact or p in caps.certify)
    can_exact = p in caps.exact or p in caps.solve
    if do_exact.any() and not can_exact:
        raise ValueError(f"exact: no exact solver for {type(model).__name__} in norm "
                         f"{norm_name(p)}")
    root = as_generator(seed, "seed")
    streams = root.bit_generator.seed_seq.spawn(len(specs) * grid.size + 1)

    R, N = grid.size, X.shape[0]
    verdict = np.full((R, N), UNRESOLVED, dtype=np.int8)
    by_exact = np.zeros((R, N), dtype=bool)
    broken_by = {s.name: np.zeros((R, N), dtype=bool) for s in specs}
    witness_norm = np.full(N, np.inf)
    masking = np.zeros(R, dtype=np.int64)
    clock = np.zeros(R, dtype=np.int64)
    with model.fixed_weights():
        clean = model.correct(X, y, check_input=False)
        witness_norm[~clean] = 0.0
        broken = ~clean                     # broken at the current radius (monotone)
        mn = [s for s in specs if s.kind == "min-norm" and (attribution or not closed)]
        mn_radius = np.full(N, np.inf)
        for s in mn:  # one run for the whole curve
            delta, _ = s.radii(model, X, y, p, seed=streams[-1], **options[s.name])
            marg, _ = _verify.recheck(model, X, y, delta, np.inf, p)
            r = _norms(delta, p)
            ok = (marg <= 0) & clean
            mn_radius = np.where(ok, np.minimum(mn_radius, r), mn_radius)
        certified_prev = np.ones(N, dtype=bool)
        others = [s for s in specs if s.kind != "min-norm"]
        bar = _bar(progress, R)
        try:
            for i, eps in enumerate(grid):
                eps = float(eps)
                before = broken.copy()  # attribution attacks every point standing here
                newly = clean & ~broken & (mn_radius <= eps * (1.0 + 1e-12))
                for s in mn:
                    broken_by[s.name][i] = newly
                broken = broken | newly
                witness_norm = np.where(newly, np.minimum(witness_norm, mn_radius), witness_norm)
                cert = np.zeros(N, dtype=bool)
                if can_certify:
                    # A point not certified at a smaller radius is not tried again (sound:
                    # certification is only ever lost).  Attribution certifies every clean
                    # point so that a certified-and-broken contradiction cannot hide.
                    todo = np.flatnonzero((clean if attribution else ~broken) & certified_prev)
                    if todo.size:
                        extra = ({"iters": budget.crown_iters}
                                 if model.kind == "TwoLayerReLU" and p not in caps.exact else {})
                        bound = _verify.certified_margin(model, X[todo], y[todo], eps, p,
                                                         check_input=False, **extra)
                        cert[todo] = bound > 0
                    if (cert & broken).any():
                        bad = np.flatnonzero(cert & broken)[:10].tolist()
                        raise SoundnessError(f"points {bad} have a re-checked witness and a "
                                             f"certificate at eps={eps}")
                certified_prev = cert
                if closed and not attribution:
                    # Exact by the closed form: uncertified points are broken (their
                    # minimum is <= 0), with a re-checked witness where the model gives one.
                    shut = clean & ~broken & ~cert
                    by_exact[i, shut] = by_exact[i, cert] = True
                    broken = broken | shut
                    verdict[i, broken] = BROKEN
                    verdict[i, cert & ~broken] = CERTIFIED
                    if bar is not None:
                        bar.update(1)
                    continue
                start_broken = before if attribution else broken.copy()
                by_gradient = newly.copy()  # the minimum-norm attack follows gradients too
                for j, s in enumerate(others):
                    idx = np.flatnonzero(~start_broken if attribution else ~broken & ~cert)
                    if idx.size == 0:
                        continue
                    delta = s.run(model, X[idx], y[idx], eps, p, world=world,
                                  seed=streams[j * R + i], **options[s.name])
                    marg, inside = _verify.recheck(model, X[idx], y[idx], delta, eps, p)
                    ok = (marg <= 0) & inside
                    hit = idx[ok]
                    broken_by[s.name][i, hit] = True
                    if cert[hit].any():
                        raise SoundnessError(f"attack {s.name!r} broke certified points "
                                             f"{hit[cert[hit]][:10].tolist()} at eps={eps}")
                    if s.kind == "gradient-free":
                        masking[i] += int(np.sum(~by_gradient[hit]))
                    else:
                        by_gradient[hit] = True
                    witness_norm[hit] = np.minimum(witness_norm[hit], _norms(delta, p)[ok])
                    broken[hit] = True
                if do_exact[i]:
                    todo = np.flatnonzero(~broken & ~cert)
                    if todo.size:
                        ex = _verify.exact_margin(model, X[todo], y[todo], eps, p,
                                                  time_limit=budget.time_limit,
                                                  node_limit=budget.node_limit, decide=True,
                                                  total_nodes=budget.exact_nodes,
                                                  total_time=budget.exact_time,
                                                  check_input=False)
                        if ex.clock is not None:
                            # Only what the clock left undecided can differ between runs.
                            clock[i] = int(np.sum(ex.clock & ~ex.broken & ~ex.certified))
                        bk, ct = todo[ex.broken], todo[ex.certified & ~ex.broken]
                        broken[bk] = True
                        cert[ct] = True
                        by_exact[i, bk] = True
                        by_exact[i, ct] = True
                        witness_norm[bk] = np.minimum(witness_norm[bk],
                                                      _norms(ex.delta[ex.broken], p))
                verdict[i, broken] = BROKEN
                verdict[i, cert & ~broken] = CERTIFIED
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    cert_radius = np.zeros(N)
    for i in range(R):
        cert_radius = np.where(verdict[i] == CERTIFIED, grid[i], cert_radius)
    methods = {"attacks": [s.name for s in specs],
               "skipped": [n for n in (names if not isinstance(names, str) else (names,))
                           if n not in {s.name for s in specs}],
               "certificate": bool(can_certify), "exact": [float(e) for e in grid[do_exact]],
               "attribution": attribution, "budget": budget.__dict__.copy()}
    return Robustness(grid, norm_name(p), verdict, by_exact, broken_by, witness_norm,
                      cert_radius, clean, masking, methods, clock)


def _norms(delta, p):
    shape = np.shape(delta)
    flat = np.asarray(delta, dtype=np.float64).reshape(shape[0], int(np.prod(shape[1:])))
    if flat.shape[1] == 0:
        return np.zeros(flat.shape[0])
    return np.linalg.norm(flat, ord=p, axis=1)


def _bar(progress, total):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="robustness", unit="radius")
