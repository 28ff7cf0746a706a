"""Tests reach loopback only (no network beyond this machine in tests).

The suite puts this folder on PYTHONPATH (tests/conftest.py), so Python imports it at
start-up in the test process and in every server process a test starts: a name lookup
for any host but a loopback one fails at once, before a packet leaves. A real-mode venue
whose URL a test left at its public default (a private feed opening after a placement,
say) then fails like an unreachable venue instead of reaching out.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}
_lookup = socket.getaddrinfo


def _is_loopback(host: object) -> bool:
    if host is None:
        return True  # a wildcard bind
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name in _LOOPBACK_NAMES or name == "":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_loopback(host):
        raise socket.gaierror(socket.EAI_NONAME, f"tests reach loopback only, not {host!r}")
    return _lookup(host, *args, **kwargs)


socket.getaddrinfo = _loopback_only
