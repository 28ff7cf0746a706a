"""The suite's own guard: a name lookup beyond loopback fails, in tests and in the server
processes they start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


def test_lookups_beyond_loopback_fail_here() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("ws-api.testnet.binance.vision", 443)
    assert socket.getaddrinfo("127.0.0.1", 80)
    assert socket.getaddrinfo("localhost", 80)


def test_and_in_the_processes_tests_start() -> None:
    code = (
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('stream.binance.com', 9443)\n"
        "except socket.gaierror as error:\n"
        "    print('refused', error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    assert "loopback only" in result.stdout
