"""A pytest plugin: registered theorem checks as test items.

Installed with theorylab (entry point ``pytest11``), or named explicitly with
``pytest -p theorylab.pytest_plugin``.  It does nothing unless asked::

    pytest --theorylab-checks --theorylab-module examples/my_claim.py \\
           --theorylab-only user. --theorylab-seeds 3

collects one test item per registered check (theorylab's own, the installed
packages' entry points ``theorylab.checks``, and the ``--theorylab-module``
files or modules), named ``theorylab-checks::<check id>``.  An item runs its
check on the seeds through :func:`theorylab.testing.assert_claim` and fails,
showing the verdict table, unless the check PASSES.  ``-k`` selects items by
check id as usual.

Options: ``--theorylab-checks`` (collect the checks), ``--theorylab-module
PATH_OR_MODULE`` (also load this module's checks; repeatable),
``--theorylab-only ID`` (only these ids, or prefixes ending in "."; repeatable),
``--theorylab-seeds N`` (seeds 0 .. N-1, default 3), ``--theorylab-regime
{quick,full}`` (default quick), ``--theorylab-allow-inconclusive`` (count an
INCONCLUSIVE verdict as a pass).
"""

from __future__ import annotations

import pytest

__all__ = ["CheckItem", "pytest_addoption", "pytest_collection_modifyitems"]


def pytest_addoption(parser):
    group = parser.getgroup("theorylab", "theorylab theorem checks as tests")
    group.addoption("--theorylab-checks", action="store_true", default=False,
                    help="collect every registered theorylab check as a test item")
    group.addoption("--theorylab-module", action="append", default=[],
                    metavar="PATH_OR_MODULE",
                    help="also load the checks this file or module registers (repeatable)")
    group.addoption("--theorylab-only", action="append", default=[], metavar="ID",
                    help="collect only these check ids or prefixes ending in '.' (repeatable)")
    group.addoption("--theorylab-seeds", type=int, default=3, metavar="N",
                    help="seeds 0..N-1 for each check (default 3)")
    group.addoption("--theorylab-regime", choices=["quick", "full"], default="quick",
                    help="parameter regime of the checks (default quick)")
    group.addoption("--theorylab-allow-inconclusive", action="store_true", default=False,
                    help="count an INCONCLUSIVE verdict as a pass")


class CheckItem(pytest.Item):
    """One theorem check as a test: runs on the seeds, passes when the check PASSES."""

    def __init__(self, *, check, **kwargs):
        super().__init__(**kwargs)
        self.check = check

    def runtest(self):
        from theorylab.testing import assert_claim

        opt = self.config.getoption
        assert_claim(self.check, seeds=opt("theorylab_seeds"), regime=opt("theorylab_regime"),
                     allow_inconclusive=opt("theorylab_allow_inconclusive"))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)  # the verdict table, not the runner's traceback
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"theorylab check {self.check.id}"


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect
def pytest_collection_modifyitems(session, config, items):
    if not config.getoption("theorylab_checks"):
        return
    import proofs_check as pc

    try:
        registry = pc.load_all(config.getoption("theorylab_module"))
        only = config.getoption("theorylab_only")
        checks = pc.select(only) if only else list(registry.values())
    except ValueError as exc:
        raise pytest.UsageError(f"--theorylab-checks: {exc}") from exc
    if config.getoption("theorylab_seeds") < 1:
        raise pytest.UsageError("--theorylab-seeds must be >= 1")
    for check in checks:
        items.append(CheckItem.from_parent(session, name=f"theorylab-checks::{check.id}",
                                           check=check))
