import pytest

from titan_grpc.config import Secret, load_settings
from titan_grpc.errors import ConfigError


def test_defaults_are_simulated_on_loopback() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.use_real_exchanges is False
    assert settings.grpc_address == "127.0.0.1:50051"
    assert settings.binds_loopback_only
    assert settings.binance.testnet and settings.coinbase.testnet and settings.kucoin.testnet


def test_every_invalid_variable_gets_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "USE_REAL_EXCHANGES": "maybe",
                "TITAN_GRPC_ADDRESS": "nowhere",
                "TITAN_LOG_LEVEL": "LOUD",
                "TITAN_SIM_SEED": "x",
                "BINANCE_BASE_URL": "ftp://example",
                "TITAN_QUOTE_ALIASES": "USDT",
            },
            env_file=None,
        )
    problems = caught.value.problems
    assert len(problems) == 6
    for variable in (
        "USE_REAL_EXCHANGES",
        "TITAN_GRPC_ADDRESS",
        "TITAN_LOG_LEVEL",
        "TITAN_SIM_SEED",
        "BINANCE_BASE_URL",
        "TITAN_QUOTE_ALIASES",
    ):
        assert sum(line.startswith(variable + ":") for line in problems) == 1


def test_secrets_are_never_echoed() -> None:
    canary = "CANARY-SECRET-7f3a"
    settings = load_settings(
        {"BINANCE_API_SECRET": canary, "TITAN_AUTH_TOKENS": f"{canary}-token:read"}, env_file=None
    )
    assert settings.binance.credentials.api_secret.reveal() == canary
    assert settings.auth_grants[0].scopes == {"read"}
    assert canary not in repr(settings)
    assert canary not in str(settings.binance)
    assert repr(Secret(canary)) == "Secret('***')"


def test_env_file_is_read_and_environment_wins(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env_file = tmp_path / ".env"
    env_file.write_text("TITAN_SIM_SEED=99\nTITAN_LOG_LEVEL=debug\n")
    settings = load_settings({"TITAN_LOG_LEVEL": "WARNING"}, env_file=str(env_file))
    assert settings.sim_seed == 99
    assert settings.log_level == "WARNING"


def test_quote_aliases_and_non_loopback_detection() -> None:
    settings = load_settings(
        {"TITAN_QUOTE_ALIASES": "usdt:usd", "TITAN_GRPC_ADDRESS": "0.0.0.0:50051"}, env_file=None
    )
    assert settings.quote_aliases == (("USDT", "USD"),)
    assert not settings.binds_loopback_only
    assert load_settings({"TITAN_GRPC_ADDRESS": "[::1]:1"}, env_file=None).binds_loopback_only


def test_store_urls_are_secrets_and_checked_without_echo() -> None:
    password = "CANARY-PW-91c2"
    url = f"postgresql://titan:{password}@db:5432/titan"
    settings = load_settings(
        {"TITAN_JOURNAL_URL": url, "TITAN_REDIS_URL": f"redis://:{password}@cache:6379/0"},
        env_file=None,
    )
    assert settings.journal_url.reveal() == url
    assert password not in repr(settings)
    defaults = load_settings({}, env_file=None)
    assert not defaults.journal_url and not defaults.redis_url
    assert defaults.reconcile_settle_seconds == 30.0  # well above the 10 s REST timeout
    assert defaults.journal_retention_days == 30
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "TITAN_JOURNAL_URL": f"mysql://{password}@db",
                "TITAN_REDIS_URL": f"http://{password}",
            },
            env_file=None,
        )
    problems = caught.value.problems
    assert [line.split(":")[0] for line in problems] == ["TITAN_JOURNAL_URL", "TITAN_REDIS_URL"]
    assert all(password not in line for line in problems)
