"""pyproject's pytest filters silence the other libraries' warnings, and only those.

Each filter is applied on its own over an "error" filter, and the real call
that raises the warning is made: a filter that no longer matches (the
library changed its message or module) makes the warning an error here.
"""

import builtins
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

FILTERS = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())[
    "tool"]["pytest"]["ini_options"]["filterwarnings"]


def _apply(spec: str) -> None:
    action, message, category, module = spec.split(":")
    warnings.filterwarnings(action, message=message, category=getattr(builtins, category),
                            module=module)


def _idata(seed: int):
    import arviz as az

    rng = np.random.default_rng(seed)
    return az.from_dict(posterior={"mu": rng.normal(size=(2, 50))},
                        log_likelihood={"y": rng.normal(-1.0, 0.1, size=(2, 50, 20))})


def _arviz_plot():
    import matplotlib

    matplotlib.use("Agg")
    import arviz as az
    import matplotlib.pyplot as plt

    az.plot_trace(_idata(0))
    plt.close("all")


def _arviz_compare():
    import arviz as az

    az.compare({"a": _idata(1), "b": _idata(2)}, ic="loo")


CALLS = {"normalize_kwargs": _arviz_plot, "DataFrame.sort_values": _arviz_compare}


@pytest.mark.parametrize("spec", FILTERS)
def test_each_filter_names_another_library_and_silences_its_warning(spec):
    action, message, category, module = spec.split(":")
    assert action == "ignore" and message and module and not module.startswith("bayesgmm")
    (call,) = [call for key, call in CALLS.items() if key in message]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=UserWarning)  # ArviZ's own notes on tiny data
        _apply(spec)
        call()
