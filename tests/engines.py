"""Real PostgreSQL and Redis servers on loopback for the store tests.

Started once per test session (fixtures ``postgres_url`` and ``redis_url`` in conftest),
each on a free port with a throw-away data directory, stopped at the end.

The binaries come from Debian's packages (``make engines`` installs ``postgresql`` and
``redis-server`` when missing). Under ``make test`` (``TITAN_REQUIRE_ENGINES=1``, also in
CI) a missing binary fails loudly; a plain ``pytest`` run without them skips only the
tests that need an engine.

PostgreSQL refuses to run as root: as root the server runs as ``nobody`` in a data
directory handed to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

START_TIMEOUT_SECONDS = 60.0
POSTGRES_USER = "titan"


def engines_required() -> bool:
    return os.environ.get("TITAN_REQUIRE_ENGINES", "") == "1" or os.environ.get("CI") == "true"


def missing(what: str) -> None:
    message = f"{what} is not installed (run `make engines`, or install it from Debian)"
    if engines_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"engine exited at start:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # polling a starting server, not timing a test
    process.kill()
    raise RuntimeError(f"engine did not listen on {port}:\n{log.read_text(errors='replace')}")


def postgres_bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


@contextmanager
def running_postgres() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1; yields its URL (database ``postgres``)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        missing("PostgreSQL (initdb/postgres)")
        raise AssertionError("unreachable")
    as_root = os.geteuid() == 0
    user = pwd.getpwnam("nobody") if as_root else None
    # Not under pytest's tmp dir: that one is private to root, and the server is not root.
    data_root = Path(tempfile.mkdtemp(prefix="titan-pg-"))
    data = data_root / "data"
    data.mkdir()
    log = data_root / "server.log"
    log.touch()
    if user is not None:
        for path in (data_root, data, log):
            os.chown(path, user.pw_uid, user.pw_gid)
    run_as = {"user": user.pw_uid, "group": user.pw_gid} if user is not None else {}
    port = _free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                POSTGRES_USER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            cwd=data_root,
            **run_as,  # type: ignore[arg-type]
        )
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={data_root}",
                    "-c",
                    "fsync=off",  # a test server: durability is not what is tested here
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=data_root,
                **run_as,  # type: ignore[arg-type]
            )
        _wait_for_port(port, process, log)
        yield f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}/postgres"
    finally:
        if process is not None:
            process.terminate()  # SIGTERM: smart shutdown
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(data_root, ignore_errors=True)


@contextmanager
def running_redis() -> Iterator[str]:
    """A Redis (or Valkey) server on 127.0.0.1, no persistence; yields its URL."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        missing("Redis (redis-server) or Valkey (valkey-server)")
        raise AssertionError("unreachable")
    work = Path(tempfile.mkdtemp(prefix="titan-redis-"))
    log = work / "server.log"
    port = _free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(work),
                    "--daemonize",
                    "no",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=work,
            )
        _wait_for_port(port, process, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(work, ignore_errors=True)


def create_database(postgres_url: str, name: str) -> str:
    """A fresh, empty database on the session's server; returns its URL."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    return f"{base}/{name}"
