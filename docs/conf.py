"""Sphinx configuration: the API reference from the numpydoc docstrings, the CLI guide, examples.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (``pip install ".[docs]"``);
``tests/test_docs.py`` runs the same build and fails on any warning.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # the checkout's package, not an installed copy

from bayesgmm._version import __version__  # noqa: E402

project = "bayesgmm"
author = "the bayesgmm developers"
copyright = "the bayesgmm developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",  # docs/cli.md
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
master_doc = "index"

# Members are documented with :members: on each page; numpydoc's own
# autosummary tables of class members would need generated stub pages.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections say the types

html_theme = "alabaster"
html_static_path = []


def _skip_metadata_routing(app, what, name, obj, skip, options):
    """Leave out scikit-learn's metadata-routing methods, which every estimator inherits."""
    if name == "get_metadata_routing" or (name.startswith("set_") and name.endswith("_request")):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_routing)
