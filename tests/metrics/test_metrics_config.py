"""The metrics option: off unless given, from the flag or SVASIM_METRICS_PORT, checked."""

from __future__ import annotations

import pytest

from svasim.config import ConfigError, FabricConfig


def test_metrics_are_off_unless_a_port_is_given(monkeypatch):
    monkeypatch.delenv("SVASIM_METRICS_PORT", raising=False)
    assert FabricConfig().metrics_port is None
    assert FabricConfig.from_env().metrics_port is None


@pytest.mark.parametrize("text,port", [("9464", 9464), ("0", 0)])
def test_the_environment_sets_the_metrics_port(monkeypatch, text, port):
    monkeypatch.setenv("SVASIM_METRICS_PORT", text)
    assert FabricConfig.from_env().metrics_port == port


def test_a_metrics_port_that_is_not_a_number_names_the_variable(monkeypatch):
    monkeypatch.setenv("SVASIM_METRICS_PORT", "prom")
    with pytest.raises(ConfigError, match="SVASIM_METRICS_PORT"):
        FabricConfig.from_env()


@pytest.mark.parametrize("port", [-1, 65536])
def test_a_metrics_port_out_of_range_is_refused(port):
    with pytest.raises(ConfigError, match="metrics port"):
        FabricConfig(metrics_port=port).check()
