"""iw.config: the defaults engine functions fall back to, changed for a block or for the session, and refused when wrong."""

from __future__ import annotations

import pytest

import interpwidgets as iw
from interpwidgets import config


def test_scoped_settings_hold_inside_the_block_and_are_restored_after_an_error():
    before = config.current()
    with pytest.raises(RuntimeError):
        with iw.config.scoped(progress=False, batch_budget_mb=64, device="cpu"):
            assert (config.progress, config.batch_budget_mb, config.device) == (False, 64, "cpu")
            assert config.resolve_budget_mb(None, "cpu") == 64.0 and config.default_device() == "cpu"
            raise RuntimeError
    assert config.current() == before


def test_set_changes_the_session_default_until_set_back():
    try:
        config.set(progress=False)
        assert config.progress is False and config.progress_enabled(None) is False and config.progress_enabled(True)
    finally:
        config.set(progress=True)
    assert config.progress is True


def test_without_settings_the_budget_is_one_gib_on_cpu_and_an_explicit_value_wins():
    assert config.resolve_budget_mb(None, "cpu") == 1024.0
    assert config.resolve_budget_mb(300, "cpu") == 300.0


def test_unknown_or_invalid_settings_are_refused_naming_the_valid_ones():
    with pytest.raises(TypeError, match="the settings are"):
        config.set(progres=False)
    with pytest.raises(ValueError, match="batch_budget_mb must be a positive"):
        config.set(batch_budget_mb=0)
    with pytest.raises(TypeError, match="progress must be True or False"):
        config.set(progress="no")
    with pytest.raises(ValueError, match="batch_budget_mb must be positive"):
        config.resolve_budget_mb(-1, "cpu")
    with pytest.raises(AttributeError, match="the settings are"):
        config.colour  # noqa: B018
    assert config.current() == config.Settings()
