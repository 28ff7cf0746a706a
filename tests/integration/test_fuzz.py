"""Fuzzing every RPC over a real channel (tests/fuzzing.py): random field values, huge and
deeply repeated fields, raw and malformed bodies, a few at a time.

Never UNKNOWN or INTERNAL, every error message under 1 KB, no ERROR or traceback in the
server's log, the server still SERVING, and its resident memory grown by under 64 MiB.
The server runs in its own process so its memory is its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests import fuzzing

SEED = 16
WARM_UP = 500
REQUESTS = 2_000
MAX_RSS_GROWTH_KIB = 64 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[fuzzing.ServerProcess]:
    with fuzzing.ServerProcess() as running:
        yield running


def test_every_case_kind_reaches_every_rpc() -> None:
    cases = list(fuzzing.cases(SEED, REQUESTS))
    assert {case.kind for case in cases} == set(fuzzing.KINDS)
    assert {case.method.name for case in cases} == {m.name for m in fuzzing.SERVICE.methods}
    assert [c.body for c in fuzzing.cases(SEED, 50)] == [c.body for c in cases[:50]]


def test_random_and_hostile_requests_never_break_the_server(
    server: fuzzing.ServerProcess,
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        # The warm-up fills caches, pools and allocator arenas with the same mix, so the
        # measured growth is what the fuzzing itself leaves behind.
        fuzzing.run(channel, fuzzing.cases(SEED + 1, WARM_UP))
        before = server.memory_kib()
        report = fuzzing.run(channel, fuzzing.cases(SEED, REQUESTS))
        after = server.memory_kib()
        assert fuzzing.serving(channel)
    assert report.calls == REQUESTS
    assert report.violations == [], report.violations[:20]
    assert report.longest_error < fuzzing.MAX_ERROR_BYTES
    assert server.problems == [], server.problems[:20]
    assert after - before < MAX_RSS_GROWTH_KIB, (before, after, report.codes)
    # Malformed input is refused as such, not by luck of a timeout.
    assert report.codes["INVALID_ARGUMENT"] > REQUESTS // 3, report.codes
