"""A wheel built from a clean copy of the sources installs into a fresh virtualenv, and its
``titan-grpc`` serves and answers ``status --json`` (the build hook generated titan_grpc/gen).

Offline and quick: the wheel is built with ``--no-build-isolation`` (the dev set-up has
setuptools, grpcio-tools and mypy-protobuf), and the fresh virtualenv reaches the already
installed dependencies through a ``.pth`` file instead of downloading them; ``pip check``
then proves every declared dependency is satisfied there.
"""

from __future__ import annotations

import json
import shutil
import signal
import site
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.integration.test_cli import free_port, server_env, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "protos", "scripts")


def _clean_copy(target: Path) -> Path:
    target.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    shutil.copytree(
        ROOT / "titan_grpc",
        target / "titan_grpc",
        ignore=shutil.ignore_patterns("__pycache__", "gen"),
    )
    return target


def _dependencies_without_titan(target: Path) -> Path:
    """The dev environment's installed packages, minus its editable titan-grpc."""
    target.mkdir()
    for packages in map(Path, site.getsitepackages()):
        for entry in packages.iterdir():
            if not entry.name.lower().startswith(("titan_grpc", "__editable__", "_virtualenv")):
                if not (target / entry.name).exists():
                    (target / entry.name).symlink_to(entry)
    return target


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def test_wheel_installs_and_serves_from_a_fresh_virtualenv(tmp_path: Path) -> None:
    source = _clean_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    pip = (sys.executable, "-m", "pip")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source, cwd=tmp_path)
    (wheel,) = dist.glob("titan_grpc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "titan_grpc/gen/titan/v1/exchange_pb2.py" in names
    assert "titan_grpc/gen/titan/v1/exchange_pb2_grpc.py" in names

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
    ).stdout.strip()
    deps = _dependencies_without_titan(tmp_path / "deps")
    (Path(purelib) / "_titan_test_deps.pth").write_text(f"{deps}\n")
    _run(*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    _run(*pip, "--python", python, "check", cwd=tmp_path)
    where = _run(python, "-c", "import titan_grpc; print(titan_grpc.__file__)", cwd=tmp_path)
    assert where.stdout.startswith(str(venv))

    port = free_port()
    titan = venv / "bin" / "titan-grpc"
    server = subprocess.Popen(
        [titan, "serve", "--address", f"127.0.0.1:{port}", "--env-file", ""],
        cwd=tmp_path,
        env=server_env(TITAN_JOURNAL_PATH=str(tmp_path / "journal.sqlite3")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(port, server)  # type: ignore[arg-type]
        status = _run(titan, "status", "--json", "--address", f"127.0.0.1:{port}", cwd=tmp_path)
        answer = json.loads(status.stdout)
        assert answer["mode"] == "MODE_SIMULATED" and answer["venues"]
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
        assert server.returncode == 0, stderr
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
