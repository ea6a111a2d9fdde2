"""GaussianMixtureIC's grid against R mclust's (committed reference tables, no R needed).

``tests/fixtures/mclust``: ``mclustBIC(X, G = 1:9)`` with mclust 6.0's
defaults, all fourteen models. Per cell, in mclust's sign (larger is
better): never below mclust's by more than 0.05 unless the hierarchical
start (mclust's) leads to a fit that is degenerate by
:func:`~bayesgmm.mixture.selection.degeneracy`; the choice is mclust's or a
sound model with a better BIC. ``benchmarks/mclust_comparison.py`` runs
every data set and lists the cells that differ.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from bayesgmm import GaussianMixture, GaussianMixtureIC
from bayesgmm.mixture.selection import degeneracy

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mclust"
# mclust has no reg_covar; its stopping rule is looser than this tolerance.
SETTINGS = dict(tol=1e-8, max_iter=2000, random_state=0, reg_covar=1e-10)


# A part of each grid, to keep the suite short (benchmarks/mclust_comparison.py
# runs all of them): on iris one structure of each kind (closed form,
# iterative, with mclust's NA cells: EVV and VEE), on the anisotropic set
# (where k-means starts fail) mclust's choice and three others, on one_d
# mclust's 'E' and 'V'.
GRIDS = {
    "iris": ["EII", "VEI", "EEE", "VEE", "EEV", "VEV", "EVV", "VVV"],
    "anisotropic": ["EII", "EEE", "VEV", "VVV"],
    "one_d": "all",
}


@pytest.fixture(scope="module", params=sorted(GRIDS))
def grid(request):
    name = request.param
    reference = json.loads((FIXTURES / f"{name}.json").read_text())
    X = np.loadtxt(FIXTURES / f"{name}.csv", delimiter=",", skiprows=1, ndmin=2)
    np.testing.assert_array_equal(X, np.asarray(reference["input"]).reshape(X.shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixtureIC(1, 9, covariance_type=GRIDS[name], **SETTINGS).fit(X)
    return X, reference, model


def test_every_cell_reaches_mclusts_bic_or_better(grid):
    X, reference, model = grid
    results = model.results_
    worse = []
    for index, (structure, k) in enumerate(zip(results["param_covariance_type"],
                                               results["param_n_components"])):
        theirs = reference["bic"][structure][int(k) - 1]
        assert results["n_parameters"][index] == reference["n_parameters"][structure][int(k) - 1]
        if theirs is None or results["degenerate"][index]:
            continue
        if -results["bic"][index] < theirs - 0.05:
            worse.append((structure, int(k)))
    excused = []
    for structure, k in worse:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = GaussianMixture(k, covariance_type=structure, init_params="hierarchical",
                                    **SETTINGS).fit(X)
        if degeneracy(start, len(X), SETTINGS["reg_covar"]):
            excused.append((structure, k))
    # VVE is excepted: mclust's orientation step ignores the volumes, so its
    # VVE is not the maximum-likelihood fit and its path differs from ours.
    assert [cell for cell in worse if cell not in excused and cell[0] != "VVE"] == []


def test_cells_at_the_same_optimum_agree_to_a_hundredth(grid):
    X, reference, model = grid
    results = model.results_
    theirs = np.array([reference["bic"][s][int(k) - 1] if reference["bic"][s][int(k) - 1] is not None
                       else np.nan for s, k in zip(results["param_covariance_type"],
                                                   results["param_n_components"])])
    ours = -results["bic"]
    # Most cells reach the same optimum and agree to 0.01; near it, the rest
    # are above mclust's (its stopping rule, a 1e-5 relative change, stops
    # short), never below by more than 0.01.
    assert np.count_nonzero(np.abs(ours - theirs) <= 0.01) >= 3
    near = np.abs(ours - theirs) <= 0.05
    assert np.min((ours - theirs)[near]) >= -0.01


def test_the_choice_is_mclusts_or_a_better_sound_model(grid):
    X, reference, model = grid
    best = reference["best"][0]
    assert best["model"] in model.results_["param_covariance_type"]
    chosen = (model.covariance_type_, model.n_components_)
    # mclust's choice (reached to 0.01, or a little higher: its stopping
    # rule), or a model with a better BIC.
    assert -model.criterion_ >= best["bic"] - 0.01
    if chosen != (best["model"], best["G"]):
        assert -model.criterion_ > best["bic"] + 0.05
    assert not model.results_["degenerate"][np.argmin(model.results_["rank"])]
