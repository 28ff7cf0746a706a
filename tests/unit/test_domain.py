import os
import pickle
import subprocess
import sys
from decimal import Decimal

import pytest

from titan_grpc.domain import Symbol, format_decimal, parse_decimal, parse_symbol
from titan_grpc.errors import InvalidArgument, excerpt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BTC-USDT", Symbol("BTC", "USDT")),
        ("BTCUSDT", Symbol("BTC", "USDT")),
        ("BTC/USDT", Symbol("BTC", "USDT")),
        ("btc-usdt", Symbol("BTC", "USDT")),
        ("btcusdt", Symbol("BTC", "USDT")),
        ("eth_btc", Symbol("ETH", "BTC")),
        ("ETHBTC", Symbol("ETH", "BTC")),
        ("BTCFDUSD", Symbol("BTC", "FDUSD")),
        ("SOLUSD", Symbol("SOL", "USD")),
        (" BTC-USDT ", Symbol("BTC", "USDT")),
    ],
)
def test_parse_symbol_accepts_the_usual_spellings(text: str, expected: Symbol) -> None:
    assert parse_symbol(text) == expected
    assert parse_symbol(text).canonical == f"{expected.base}-{expected.quote}"


@pytest.mark.parametrize("text", ["", "   ", "BTC--USDT", "BTC USDT", "B@C-USDT", "XYZ", "USDT"])
def test_parse_symbol_rejects_garbage_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_symbol(text, "symbols[2]")
    assert caught.value.field == "symbols[2]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("43000.10", Decimal("43000.10")),
        ("0.00000001", Decimal("0.00000001")),
        ("1", Decimal("1")),
        (".5", Decimal("0.5")),
        ("1e-3", Decimal("0.001")),
        ("12345678901234567890.12345678", Decimal("12345678901234567890.12345678")),
    ],
)
def test_parse_decimal_accepts_plain_decimals(text: str, expected: Decimal) -> None:
    assert parse_decimal(text, "price") == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "not a decimal"),
        ("NaN", "not a decimal"),
        ("Infinity", "not a decimal"),
        ("-1", "negative"),
        ("1e400", "out of range"),
        ("1e-400", "out of range"),
        ("0x10", "not a decimal"),
        ("1,5", "not a decimal"),
        ("", "required"),
        ("0", "greater than zero"),
        ("1.00000000000000000000000000001", "significant digits"),
    ],
)
def test_parse_decimal_rejects_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_decimal(text, "quantity")
    assert caught.value.field == "quantity"
    assert reason in caught.value.reason


def test_parse_decimal_optional_and_zero() -> None:
    assert parse_decimal("", "price", required=False) is None
    assert parse_decimal("0", "price", allow_zero=True) == 0
    assert str(parse_decimal("-0", "price", allow_zero=True)) == "0"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("100"), "100"),
        (Decimal("1E+2"), "100"),
        (Decimal("0.10000000"), "0.1"),
        (Decimal("0E-8"), "0"),
        (Decimal("0.00000001"), "0.00000001"),
        (None, ""),
    ],
)
def test_format_decimal_is_plain(value: Decimal | None, text: str) -> None:
    assert format_decimal(value) == text


@pytest.mark.parametrize("text", ["٣.٥", "３", "1.٥", "²", "1_000"])
def test_parse_decimal_accepts_ascii_digits_only(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_decimal(text, "price")
    assert caught.value.field == "price"


@pytest.mark.parametrize("text", ["ßUSDT", "ﬀ-USDT", "BTC-USDＴ"])
def test_parse_symbol_refuses_what_only_upper_case_makes_ascii(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_symbol(text)


def test_excerpt_is_short_escaped_and_says_how_long_the_value_was() -> None:
    assert excerpt("BTC-USDT") == '"BTC-USDT"'
    assert excerpt('a"\\\x00\n€') == '"a\\"\\\\\\x00\\n\\u20ac"'
    long = excerpt("€" * 10_000)
    assert long.endswith("... (10000 characters)") and long.count("\\u20ac") == 32


def test_a_symbol_from_another_process_finds_its_market() -> None:
    # Symbols cache their hash; one pickled where strings hash differently must be hashed
    # again, or every cache keyed by it would miss.
    pickled = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys; from titan_grpc.domain import Symbol; "
            "sys.stdout.buffer.write(pickle.dumps(Symbol('BTC', 'USDT')))",
        ],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        check=True,
    ).stdout
    markets = {Symbol("BTC", "USDT"): "found"}
    assert markets[pickle.loads(pickled)] == "found"
