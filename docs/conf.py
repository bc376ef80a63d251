"""Sphinx configuration of theorylab's documentation (``make docs``)."""

import importlib
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
os.environ.setdefault("MPLBACKEND", "Agg")

import theorylab  # noqa: E402

project = "theorylab"
author = "theorylab developers"
copyright = "theorylab developers"
release = version = theorylab.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "api/generated/*.examples", "**/*.ipynb", "**/*.py",
                    "**/*.zip", "**/*.json", "**/*.md5", "**/*.pickle"]
templates_path = ["_templates"]
html_theme = "pydata_sphinx_theme"
html_title = f"theorylab {version}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = []

autosummary_generate = True
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()
# Docstrings cite the specs' sections and use plain words for types ("(n, d) array",
# "float or dict"); they are not cross-references to resolve.
numpydoc_xref_param_type = False
default_role = "literal"

sphinx_gallery_conf = {
    "examples_dirs": os.path.join(ROOT, "examples", "gallery"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "remove_config_comments": True,
    "plot_gallery": "True",
}

# Docstrings write absolute values and norms as |x| (plain text, for help()); reST would read
# |x| as a substitution reference.  Escape the bars outside literal blocks and doctests.


def _escape_bars(app, what, name, obj, options, lines):
    literal_indent = None
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if literal_indent is not None:
            if stripped and indent <= literal_indent:
                literal_indent = None
            else:
                continue
        if stripped.startswith((">>>", "...")) or "|" not in line:
            pass
        else:
            lines[i] = line.replace("\\|", "|").replace("|", "\\|")
        if stripped.endswith("::"):
            literal_indent = indent


def setup(app):
    app.connect("autodoc-process-docstring", _escape_bars)


# -- the API reference: one page per public module, one entry per name in its __all__ ----

PUBLIC_MODULES = [
    "theorylab.worlds", "theorylab.models", "theorylab.attacks", "theorylab.verify",
    "theorylab.evaluate", "theorylab.training", "theorylab.pipelines", "theorylab.metrics",
    "theorylab.theory", "theorylab.datasets", "theorylab.images", "theorylab.sweep",
    "theorylab.plots.fp", "theorylab.plots.lower_bounds", "theorylab.plots.li_li",
    "theorylab.plots.phase", "theorylab.plots.scaling", "theorylab.plots.images", "theorylab.testing",
    "theorylab.pytest_plugin", "theorylab.cli", "proofs_check",
]


def public_names(module_name):
    """The names a module exports (its ``__all__``), documented ones only."""
    module = importlib.import_module(module_name)
    names = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if isinstance(obj, type(os)):  # a submodule has its own page
            continue
        names.append(name)
    return module, names


def _write_api_pages(srcdir):
    out = os.path.join(srcdir, "api")
    os.makedirs(out, exist_ok=True)
    index = ["API reference", "=============", "",
             "Every public name of theorylab and of the check runner, by module (generated "
             "from each module's ``__all__``).", "", ".. toctree::", "   :maxdepth: 1", ""]
    for module_name in PUBLIC_MODULES:
        module, names = public_names(module_name)
        index.append(f"   {module_name}")
        functions = [n for n in names if callable(getattr(module, n))]
        data = [n for n in names if n not in functions]
        lines = [module_name, "=" * len(module_name), "", f".. automodule:: {module_name}",
                 "   :no-members:", "", f".. currentmodule:: {module_name}", ""]
        if functions:
            lines += [".. autosummary::", "   :toctree: generated", "", *[f"   {n}"
                                                                        for n in functions], ""]
        if data:
            lines += ["Constants and tables", "--------------------", ""]
            for n in data:
                lines += [f".. autodata:: {n}", "   :annotation:", ""]
        text = "\n".join(lines) + "\n"
        path = os.path.join(out, f"{module_name}.rst")
        if not os.path.exists(path) or open(path).read() != text:
            with open(path, "w") as fh:
                fh.write(text)
    text = "\n".join(index) + "\n"
    path = os.path.join(out, "index.rst")
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as fh:
            fh.write(text)


# Written when the configuration is read, before Sphinx looks for source files (so that
# autosummary finds the pages and generates a stub per name).
_write_api_pages(os.path.dirname(os.path.abspath(__file__)))
