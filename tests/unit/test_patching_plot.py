"""PatchResult.plot: every plot titled with its site (and receivers), direction and normalisation; a shared
colour scale through `limit=` so panels compared side by side read alike."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import interpwidgets as iw  # noqa: E402


@pytest.fixture(scope="module")
def task(random_model):
    return iw.tasks.ioi(random_model, n=4, seed=0)


@pytest.fixture(scope="module")
def heads(random_model, task):
    return iw.patching.activation_patch(random_model, task, site="z", progress=False)


def title(ax) -> str:
    """The title as one line (plot wraps it to the panel's width)."""
    return " ".join(ax.get_title().split())


def colour_limits(ax) -> tuple[float, float]:
    return ax.images[0].get_clim()


def test_the_title_names_site_direction_and_normalisation(heads):
    ax = heads.plot()
    assert title(ax) == ("Activation patching \u00b7 z \u00b7 clean into corrupt "
                         "normalized logit difference (0 = corrupt, 1 = clean)")
    assert ax.get_title().startswith("Activation patching")
    plt.close(ax.figure)


def test_path_patching_titles_name_their_receiver_and_raw_values_their_metric(random_model, task):
    into_query = iw.patching.path_patch(random_model, task, senders="heads", receivers="L2H1.q", normalize=False,
                                        progress=False)
    to_logits = iw.patching.path_patch(random_model, task, senders="heads", receivers="logits", normalize=False,
                                       progress=False)
    titles = [title(r.plot()) for r in (into_query, to_logits)]
    assert titles[0] == "Path patching \u00b7 z \u2192 L2H1.q \u00b7 corrupt into clean logit difference"
    assert titles[1] == "Path patching \u00b7 z \u2192 logits \u00b7 corrupt into clean logit difference"
    plt.close("all")


def test_attribution_titles_name_the_estimate(random_model, task):
    ig = iw.patching.attribution_patch(random_model, task, site="z", method="ig", steps=2, progress=False)
    assert title(ig.plot()).startswith("Attribution patching (integrated gradients) \u00b7 z \u00b7 clean into corrupt normalized")
    plt.close("all")


def test_the_colour_scale_is_symmetric_about_zero_by_default(heads):
    ax = heads.plot()
    top = float(np.nanmax(np.abs(heads.values.numpy())))
    assert colour_limits(ax) == pytest.approx((-top, top))
    label = ax.figure.axes[-1].get_ylabel()
    assert label == "normalized logit difference\n(0 = corrupt, 1 = clean)"
    plt.close(ax.figure)


def test_limit_gives_panels_one_shared_colour_scale(heads):
    """Two results compared side by side: with limit= both colour bars span the same range, so equal colours mean
    equal values (a panel at half the other's values looks half as dark)."""
    half = type(heads)(**{**heads.__dict__, "values": heads.values / 2})
    limit = float(np.nanmax(np.abs(heads.values.numpy())))
    _, (left, right) = plt.subplots(1, 2)
    heads.plot(ax=left, limit=limit)
    half.plot(ax=right, limit=limit)
    assert colour_limits(left) == colour_limits(right) == pytest.approx((-limit, limit))
    with pytest.raises(ValueError, match="limit must be a positive number"):
        heads.plot(limit=0)
    plt.close("all")


def test_an_explicit_title_replaces_the_first_line_only(heads):
    ax = heads.plot(title="exact")
    assert ax.get_title().startswith("exact\n") and title(ax) == "exact normalized logit difference (0 = corrupt, 1 = clean)"
    plt.close(ax.figure)
