"""TITAN_VENUES parsing and the entry-point registry of venue factories."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from titan_grpc.config import VenueChoice, load_settings, venue_prefix
from titan_grpc.errors import ConfigError
from titan_grpc.exchanges.plugins import PluginIndex, build_venues
from titan_grpc.exchanges.simulated import SimulatedWorld


def test_plain_names_take_their_mode_from_use_real_exchanges() -> None:
    settings = load_settings(
        {"USE_REAL_EXCHANGES": "true", "TITAN_VENUES": "binance, Coinbase=simulated,ccxt:okx"},
        env_file=None,
    )
    assert settings.venues == (
        VenueChoice("binance", False),
        VenueChoice("coinbase", True),
        VenueChoice("ccxt:okx", False),
    )
    simulated = load_settings({"TITAN_VENUES": "binance,kucoin=real"}, env_file=None)
    assert simulated.venues == (VenueChoice("binance", True), VenueChoice("kucoin", False))
    assert load_settings({}, env_file=None).venues == ()


@pytest.mark.parametrize(
    "value",
    ["binance,,coinbase", "binance=paper", "bin ance", "binance,binance=simulated", "=real"],
)
def test_an_invalid_entry_is_one_line_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TITAN_VENUES": value}, env_file=None)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("TITAN_VENUES: ")


def test_a_plugin_sees_only_its_own_prefix_and_values_never_show() -> None:
    settings = load_settings(
        {"CCXT_OKX_API_KEY": "k-secret-value", "CCXT_KRAKEN_API_KEY": "other", "X": "y"},
        env_file=None,
    )
    assert venue_prefix("ccxt:okx") == "CCXT_OKX_"
    assert settings.venue_environment.with_prefix("CCXT_OKX_") == {
        "CCXT_OKX_API_KEY": "k-secret-value"
    }
    assert "k-secret-value" not in repr(settings)


def index(*points: tuple[str, str]) -> PluginIndex:
    return PluginIndex(EntryPoint(n, v, "titan_grpc.exchanges") for n, v in points)


SIMULATOR = ("simulated", "titan_grpc.exchanges.builtin:simulated")


def test_selected_venues_come_from_factories_and_mock_is_always_served() -> None:
    settings = load_settings({"TITAN_VENUES": "kucoin,binance"}, env_file=None)
    built = build_venues(settings, SimulatedWorld(1), plugins=index(SIMULATOR))
    assert list(built) == ["kucoin", "binance", "mock"]
    assert all(backend.simulated for backend in built.values())


def test_a_plugin_that_fails_to_load_is_named() -> None:
    settings = load_settings({"TITAN_VENUES": "broken=real"}, env_file=None)
    plugins = index(SIMULATOR, ("broken", "titan_no_such_module:create"))
    with pytest.raises(ConfigError) as caught:
        build_venues(settings, SimulatedWorld(1), plugins=plugins)
    (problem,) = caught.value.problems
    assert problem.startswith("venue plugin 'broken' (titan_no_such_module:create) failed to load")
    assert "ModuleNotFoundError" in problem


def test_a_broken_plugin_nobody_selected_is_still_reported_by_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings({"TITAN_VENUES": "binance"}, env_file=None)
    plugins = index(SIMULATOR, ("broken", "titan_no_such_module:create"))
    built = build_venues(settings, SimulatedWorld(1), plugins=plugins)
    assert list(built) == ["binance", "mock"]
    assert "venue plugin 'broken' (titan_no_such_module:create) failed to load" in caplog.text


def test_unknown_venues_and_unsimulated_names_stop_start_up_with_one_line() -> None:
    for value, expected in (
        ("nowhere=real", "TITAN_VENUES: nowhere: no installed venue plugin serves 'nowhere'"),
        ("ccxt:okx=simulated", "TITAN_VENUES: ccxt:okx=simulated: the simulator has no venue"),
        ("mock=real", "TITAN_VENUES: mock: mock is always simulated"),
    ):
        settings = load_settings({"TITAN_VENUES": value}, env_file=None)
        with pytest.raises(ConfigError) as caught:
            build_venues(settings, SimulatedWorld(1), plugins=index(SIMULATOR))
        (problem,) = caught.value.problems
        assert problem.startswith(expected), problem


def test_the_family_serves_its_detailed_ids() -> None:
    plugins = index(SIMULATOR, ("ccxt", "titan_grpc.exchanges.ccxt:create"))
    assert plugins.family("ccxt:okx") == "ccxt"
    assert plugins.family("ccxt") == "ccxt"
    assert plugins.family("okx") is None
