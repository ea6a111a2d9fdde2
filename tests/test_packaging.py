"""What the distribution carries: licence, typing marker, type hints, metadata."""

import inspect
import json
import site
import tomllib
from importlib import import_module, metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression_with_its_file():
    project = PYPROJECT["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n\nCopyright (c) the bayesgmm developers\n")
    # setuptools reads a string `license` as SPDX from version 77 on.
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]


def test_typing_marker_is_shipped():
    assert (ROOT / "bayesgmm" / "py.typed").is_file()
    assert PYPROJECT["tool"]["setuptools"]["package-data"]["bayesgmm"] == ["py.typed"]


def test_docs_extra_is_declared():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {requirement.split(">=")[0] for requirement in extras["docs"]} == {
        "sphinx", "numpydoc", "myst-parser"}


@pytest.mark.parametrize("module", ["bayesgmm.datasets", "bayesgmm.alignment",
                                    "bayesgmm.metrics", "bayesgmm.plot", "bayesgmm._plot_arviz"])
def test_public_functions_have_type_hints(module):
    module = import_module(module)
    public = [function for name, function in inspect.getmembers(module, inspect.isfunction)
              if not name.startswith("_") and function.__module__ == module.__name__]
    assert public
    missing = [
        f"{function.__name__}({name})"
        for function in public
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.annotation is inspect.Parameter.empty
    ] + [f"{function.__name__} -> ?" for function in public
         if inspect.signature(function).return_annotation is inspect.Signature.empty]
    assert missing == []


@pytest.mark.parametrize("name", ["GaussianMixture", "GaussianMixtureIC", "BayesianGaussianMixture"])
def test_estimator_methods_have_type_hints(name):
    import bayesgmm

    cls = getattr(bayesgmm, name)
    methods = [function for method, function in inspect.getmembers(cls, inspect.isfunction)
               if not method.startswith("_") and function.__qualname__.startswith(name + ".")
               and method not in ("get_params", "set_params")]
    assert len(methods) >= 8
    missing = [
        f"{function.__name__}({parameter})"
        for function in methods
        for parameter, value in list(inspect.signature(function).parameters.items())[1:]
        if value.annotation is inspect.Parameter.empty and value.kind != value.VAR_KEYWORD
    ] + [f"{function.__name__} -> ?" for function in methods
         if inspect.signature(function).return_annotation is inspect.Signature.empty]
    assert missing == []


def test_installed_wheel_carries_license_and_typing_marker():
    """The installed distribution, when it is a wheel built from a checkout (as in CI)."""
    # The copy in site-packages, not the egg-info that a build leaves in the checkout.
    found = list(metadata.distributions(name="bayesgmm", path=site.getsitepackages()))
    if not found:
        pytest.skip("bayesgmm is not installed in site-packages")
    (dist,) = found
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        pytest.skip("an editable install has no wheel contents to check")
    assert dist.metadata["License-Expression"] == "BSD-3-Clause"
    files = {str(path) for path in dist.files or ()}
    assert "bayesgmm/py.typed" in files
    assert any(path.endswith("licenses/LICENSE") for path in files)
