"""The real command line: `python -m titan_grpc serve` as a separate process, and buf curl."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TITAN_", "USE_REAL"))}
    env.update({"TITAN_SIM_TICK_MS": "50", "TITAN_LOG_LEVEL": "INFO", **extra})
    return env


def wait_until_serving(port: int, process: subprocess.Popen[str]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
        except grpc.FutureTimeoutError:
            process.kill()
            raise AssertionError(f"server did not start: {process.communicate()[1]}") from None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    yield from _serve(tmp_path)


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """One server for the tests that only read, or place orders under their own ids."""
    yield from _serve(tmp_path_factory.mktemp("shared"))


def _serve(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "titan_grpc",
            "serve",
            "--address",
            f"127.0.0.1:{port}",
            "--env-file",
            "",
        ],
        cwd=ROOT,
        env=server_env(TITAN_JOURNAL_PATH=str(tmp_path / "journal.sqlite3")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(port, process)
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_serve_answers_streams_and_stops_cleanly_on_sigterm(
    served: tuple[int, subprocess.Popen[str]],
) -> None:
    port, process = served
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ExchangeServiceStub(channel)
        ticker = stub.GetMarketData(pb.GetMarketDataRequest(symbol="BTCUSDT", exchange="binance"))
        assert ticker.ticker.source.simulated
        stream = stub.StreamQuotes(
            pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["binance"])
        )
        sequences = [next(stream).quote.sequence for _ in range(3)]  # ticks every 50 ms
        assert sequences == [1, 2, 3]
        process.send_signal(signal.SIGTERM)
        remaining = list(stream)
        assert remaining[-1].notice.kind == pb.STREAM_NOTICE_KIND_SHUTDOWN
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "rpc=GetMarketData code=OK" in stderr
    assert "rpc=StreamQuotes code=OK" in stderr
    assert "stopped" in stderr


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env.setdefault("TITAN_JOURNAL_PATH", ":memory:")
    return subprocess.run(
        [sys.executable, "-m", "titan_grpc", *args],
        cwd=ROOT,
        env=server_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invalid_configuration_exits_2_with_one_line_per_variable() -> None:
    result = run_cli(
        "serve",
        "--env-file",
        "",
        TITAN_LOG_LEVEL="LOUD",
        TITAN_SIM_SEED="x",
        BINANCE_API_SECRET="CANARY-9",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("TITAN_LOG_LEVEL" in line for line in lines)
    assert any("TITAN_SIM_SEED" in line for line in lines)
    assert "CANARY-9" not in result.stderr + result.stdout


def test_non_loopback_without_access_control_refuses_to_start() -> None:
    result = run_cli("serve", "--env-file", "", "--address", f"0.0.0.0:{free_port()}")
    assert result.returncode == 2
    assert "TITAN_GRPC_ADDRESS" in result.stderr and "loopback" in result.stderr


BUF = os.environ.get("TITAN_BUF", "")


@pytest.mark.skipif(
    not BUF, reason="TITAN_BUF not set: run through `make test`, which installs buf"
)
def test_buf_curl_lists_calls_and_streams_through_reflection(
    served: tuple[int, subprocess.Popen[str]],
) -> None:
    port, _ = served
    url = f"http://127.0.0.1:{port}"
    base = [BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    listed = subprocess.run(
        [*base, "--list-services", url], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert "titan.v1.ExchangeService" in listed.stdout.split()

    unary = subprocess.run(
        [
            *base,
            f"{url}/titan.v1.ExchangeService/GetMarketData",
            "-d",
            '{"symbol":"BTCUSDT","exchange":"binance"}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unary.returncode == 0, unary.stderr
    ticker = json.loads(unary.stdout)["ticker"]
    assert ticker["symbol"] == "BTC-USDT" and ticker["source"]["simulated"] is True
    cli = titan(port, "quote", "BTCUSDT", "--exchange", "binance", "--json")
    assert set(json.loads(cli.stdout)) == set(ticker)  # one parser reads both: lowerCamel
    assert "venueSymbol" in ticker

    bad = subprocess.run(
        [
            *base,
            f"{url}/titan.v1.ExchangeService/GetMarketData",
            "-d",
            '{"symbol":"BTCUSDT","exchange":"nowhere"}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "invalid_argument" in bad.stderr

    stream = subprocess.Popen(
        [
            *base,
            f"{url}/titan.v1.ExchangeService/StreamQuotes",
            "-d",
            '{"symbols":["BTC-USDT"],"exchanges":["kucoin"]}',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the npm `buf` shim spawns the real binary: kill both
    )
    try:
        assert stream.stdout is not None
        quotes = 0
        for line in stream.stdout:
            if line.strip() == '"quote": {':
                quotes += 1
                if quotes == 2:
                    break
        assert quotes == 2
    finally:
        os.killpg(stream.pid, signal.SIGKILL)
        stream.communicate()


def test_python_example_client_runs_against_the_server(
    served: tuple[int, subprocess.Popen[str]],
) -> None:
    port, _ = served
    result = subprocess.run(
        [
            sys.executable,
            "clients/python/example.py",
            "--address",
            f"127.0.0.1:{port}",
            "--quotes",
            "4",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "mode: MODE_SIMULATED" in result.stdout
    assert "placed SIM-BIN-" in result.stdout and "ORDER_STATUS_NEW" in result.stdout
    assert "ORDER_STATUS_CANCELED" in result.stdout
    assert result.stdout.count("quote #") == 4


def titan(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "titan_grpc", *args, "--address", f"127.0.0.1:{port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_answers_every_command(served: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = served

    def as_json(*args: str) -> dict[str, object]:
        result = titan(port, *args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    assert as_json("status")["mode"] == "MODE_SIMULATED"
    assert as_json("quote", "BTCUSDT", "--exchange", "kucoin")["symbol"] == "BTC-USDT"
    assert len(as_json("quote", "ETH-USDT")["tickers"]) == 3  # type: ignore[arg-type]
    assert len(as_json("book", "BTC-USDT", "--exchange", "binance", "--depth", "3")["bids"]) == 3  # type: ignore[arg-type]
    assert as_json("best-price", "BTC-USDT", "--side", "buy", "--quantity", "0.5")["best"]
    route = as_json("route", "BTC-USDT", "--side", "sell", "--quantity", "1")
    assert route["filledQuantity"] == "1"
    placed = as_json(
        "order",
        "place",
        "--exchange",
        "mock",
        "--symbol",
        "BTC-USDT",
        "--side",
        "buy",
        "--type",
        "limit",
        "--quantity",
        "0.001",
        "--price",
        "10000",
        "--client-order-id",
        "cli-1",
    )
    assert placed["status"] == "ORDER_STATUS_NEW"
    status = as_json("order", "status", "--exchange", "mock", "--client-order-id", "cli-1")
    assert status["orderId"] == placed["orderId"]
    assert (
        as_json("order", "cancel", "--exchange", "mock", "--client-order-id", "cli-1")["status"]
        == "ORDER_STATUS_CANCELED"
    )
    venues = as_json("balances", "--exchange", "kucoin")["venues"]
    assert [v["exchange"] for v in venues] == ["kucoin"]  # type: ignore[index, union-attr]
    portfolio = as_json("portfolio")
    assert portfolio["quoteAsset"] == "USDT" and portfolio["unpriced"]
    table = titan(port, "quote", "BTC-USDT")
    assert table.returncode == 0 and "best bid" in table.stdout and "kucoin" in table.stdout
    board = titan(port, "watch", "BTC-USDT", "SOL-USDT", "--count", "8")
    assert board.returncode == 0, board.stderr
    assert "TITAN live quotes" in board.stdout and "SOL-USDT" in board.stdout
    refused = titan(
        port,
        "order",
        "place",
        "--exchange",
        "binance",
        "--symbol",
        "BTC-USDT",
        "--side",
        "sell",
        "--type",
        "limit",
        "--quantity",
        "abc",
        "--price",
        "1",
    )
    assert refused.returncode == 1 and refused.stderr.startswith(
        "titan-grpc: INVALID_ARGUMENT: quantity:"
    )


def test_watch_json_is_ndjson_only(shared_server: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = shared_server
    ndjson = titan(port, "watch", "BTC-USDT", "--json", "--count", "3")
    assert ndjson.returncode == 0, ndjson.stderr
    lines = ndjson.stdout.splitlines()
    messages = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(lines) >= 3 and all(set(m) <= {"quote", "notice"} for m in messages)
    quotes = [m["quote"] for m in messages if "quote" in m]
    assert len(quotes) == 3 and all(q["symbol"] == "BTC-USDT" for q in quotes)
    assert {"bid", "ask", "source"} <= set(quotes[0]) and "TITAN live quotes" not in ndjson.stdout


def test_watch_names_a_bad_symbol_at_once(shared_server: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = shared_server
    for symbols in (["BTC-USDT", "NOPE-XYZ"], ["NOPE-XYZ"]):
        result = titan(port, "watch", *symbols, "--count", "1")
        assert result.returncode == 1
        index = symbols.index("NOPE-XYZ")
        assert result.stderr.startswith(
            f"titan-grpc: INVALID_ARGUMENT: symbols[{index}]: NOPE-XYZ is not listed"
        ), result.stderr
        assert result.stdout == ""  # no table drawn first


def test_order_place_post_only_and_tif(shared_server: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = shared_server
    ask = json.loads(titan(port, "quote", "BTC-USDT", "--exchange", "mock", "--json").stdout)["ask"]
    place = ["order", "place", "--exchange", "mock", "--symbol", "BTC-USDT", "--json"]
    taking = titan(
        port, *place, "--side", "buy", "--type", "limit", "--quantity", "0.001",
        "--price", str(int(float(ask)) + 1000), "--post-only",
    )  # fmt: skip
    assert taking.returncode == 1 and "FAILED_PRECONDITION" in taking.stderr, taking.stderr
    resting = titan(
        port, *place, "--side", "buy", "--type", "limit", "--quantity", "0.001",
        "--price", "10000", "--post-only", "--tif", "gtc",
    )  # fmt: skip
    assert resting.returncode == 0, resting.stderr
    order = json.loads(resting.stdout)
    assert order["status"] == "ORDER_STATUS_NEW" and order["timeInForce"] == "TIME_IN_FORCE_GTC"
    ioc = titan(
        port, *place, "--side", "buy", "--type", "limit", "--quantity", "0.001",
        "--price", "10000", "--tif", "ioc",
    )  # fmt: skip
    assert json.loads(ioc.stdout)["status"] == "ORDER_STATUS_EXPIRED", ioc.stdout + ioc.stderr


def test_best_price_table_shows_arbitrage(shared_server: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = shared_server
    result = titan(port, "best-price", "BTC-USDT", "--side", "buy")
    assert result.returncode == 0, result.stderr
    assert "best" in result.stdout and "Arbitrage" in result.stdout


def test_cli_markets_open_orders_and_a_confirmed_cancel_all(
    shared_server: tuple[int, subprocess.Popen[str]],
) -> None:
    port, _ = shared_server

    def run(*args: str, answer: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "titan_grpc", *args, "--address", f"127.0.0.1:{port}"],
            cwd=ROOT,
            input=answer,
            capture_output=True,
            text=True,
            timeout=60,
        )

    markets = json.loads(
        run("markets", "--exchange", "coinbase", "--symbol", "BTC-USDT", "--json").stdout
    )["markets"]
    assert markets[0]["tickSize"] and markets[0]["feeSource"] == "FEE_SOURCE_DEFAULT"
    for cid, extra in (
        ("cli-rest", ("--side", "buy", "--type", "limit", "--price", "10000")),
        (
            "cli-stop",
            ("--side", "sell", "--type", "stop-limit", "--price", "9000", "--stop-price", "9100"),
        ),
    ):
        placed = run(
            "order",
            "place",
            "--exchange",
            "coinbase",
            "--symbol",
            "BTC-USDT",
            "--quantity",
            "0.001",
            "--client-order-id",
            cid,
            *extra,
        )
        assert placed.returncode == 0, placed.stderr
    listed = json.loads(run("open-orders", "--exchange", "coinbase", "--json").stdout)
    assert {o["clientOrderId"] for o in listed["orders"]} == {"cli-rest", "cli-stop"}
    assert all(o["placedByGateway"] for o in listed["orders"])

    declined = run("cancel-all", "--exchange", "coinbase", answer="n\n")
    assert declined.returncode == 1 and "nothing cancelled" in declined.stderr
    assert "[y/N]" in declined.stderr and "(2 listed)" in declined.stderr
    still = json.loads(run("open-orders", "--exchange", "coinbase", "--json").stdout)
    assert len(still["orders"]) == 2

    confirmed = run("cancel-all", "--exchange", "coinbase", answer="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "one by one" in confirmed.stdout
    assert not json.loads(run("open-orders", "--exchange", "coinbase", "--json").stdout).get(
        "orders"
    )
    quiet = run("cancel-all", "--exchange", "kucoin", "--yes", "--json")
    assert quiet.returncode == 0 and "[y/N]" not in quiet.stderr
    assert json.loads(quiet.stdout)["results"][0]["exchange"] == "kucoin"
