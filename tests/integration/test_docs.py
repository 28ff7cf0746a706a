"""Every shell command in README.md and clients/grpcurl.md, run as written.

The fenced ``sh`` blocks are read in document order and fed, one command at a time, to
one bash session (as a reader pasting them into a terminal would), in a scratch folder
that links the checkout's ``.venv``, ``.tools``, ``clients`` and ``protos``. Only the ports
change: the documents' 50051 (``make run``), 50052 (token), 50053 (TLS) and 50054 (mutual
TLS) become free ports, and ``TITAN_ADDRESS`` points the CLI's default at the first.

- The server on 50051 is started here (that is what ``make run`` does); the documents'
  own ``titan-grpc serve`` commands start the others, in the background.
- A stream (or a ``serve``) runs until it has shown what it is for, then gets Ctrl-C
  (SIGINT to its process group), as the documents say.
- ``make …`` commands are the set-up ``make test`` has already done; they are skipped.
- A command must exit 0, except the documented bad request, which must fail with
  INVALID_ARGUMENT.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", ROOT / "clients" / "grpcurl.md")
# The HTTP/JSON port first: a serve command naming it is ready once it answers HTTP too.
DOC_PORTS = (3000, 50051, 50052, 50053, 50054, 50055)
BUF = ROOT / ".tools" / "buf" / "node_modules" / ".bin" / "buf"
GRPCURL = ROOT / ".venv" / "bin" / "grpcurl"
NODE_MODULES = ROOT / "clients" / "node" / "node_modules"
WAIT_SECONDS = 60.0  # an upper bound for a command, never an expectation
FENCE = re.compile(r"^(?P<indent>[ \t]*)```sh\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


def sh_blocks(text: str) -> list[str]:
    blocks = []
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        blocks.append("".join(line[indent:] for line in match["body"].splitlines(True)))
    return blocks


def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    return (
        subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True).returncode == 0
    )


def commands(block: str) -> list[str]:
    """Split a block into whole commands (continuations and multi-line quotes kept)."""
    found: list[str] = []
    pending = ""
    for line in block.splitlines(True):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line
        if _complete(pending):
            found.append(pending.rstrip())
            pending = ""
    assert not pending, f"unfinished command: {pending!r}"
    return found


def documented_commands() -> list[tuple[str, str]]:
    return [
        (doc.name, command)
        for doc in DOCS
        for block in sh_blocks(doc.read_text())
        for command in commands(block)
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Shell:
    """One bash session; each command's output goes to its own files in ``folder``."""

    folder: Path
    env: dict[str, str]
    jobs: list[int] = field(default_factory=list)
    count: int = 0

    def __post_init__(self) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=self.folder,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._send("set -m")  # job control: each background job is its own process group

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def _answer(self, marker: str) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 1.0)
            if ready:
                line = self.process.stdout.readline()
                if line.startswith(marker):
                    return line[len(marker) :].strip()
        raise AssertionError("the shell did not answer")

    def _files(self) -> tuple[Path, Path]:
        self.count += 1
        return self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"

    def run(self, command: str) -> tuple[int, str, str]:
        out, err = self._files()
        marker = f"done-{uuid.uuid4().hex}:"
        self._send(f"{{ {command}\n}} >{out} 2>{err}\necho {marker}$?")
        code = int(self._answer(marker))
        return code, out.read_text(), err.read_text()

    def start(self, command: str) -> tuple[int, Path, Path]:
        out, err = self._files()
        marker = f"job-{uuid.uuid4().hex}:"
        self._send(f"{{ {command}\n}} >{out} 2>{err} &\necho {marker}$!")
        pid = int(self._answer(marker))
        self.jobs.append(pid)
        return pid, out, err

    def interrupt(self, pid: int) -> int:
        """Ctrl-C for a background job; its exit status."""
        os.killpg(pid, signal.SIGINT)
        self.jobs.remove(pid)
        marker = f"waited-{uuid.uuid4().hex}:"
        self._send(f"wait {pid}; echo {marker}$?")
        return int(self._answer(marker))

    def close(self) -> None:
        for pid in list(self.jobs):
            try:
                self.interrupt(pid)
            except ProcessLookupError:
                self.jobs.remove(pid)
        self._send("exit")
        try:
            self.process.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for(condition: object, what: str, err: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)  # polling a file or a port; no test asserts on how long it took
    raise AssertionError(f"{what}; stderr: {_read(err)}")


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[tuple[Shell, dict[int, int]]]:
    missing = [str(p) for p in (BUF, GRPCURL, NODE_MODULES) if not p.exists()]
    if missing:
        pytest.skip(f"run through `make test` (it installs {', '.join(missing)})")
    for name in (".venv", ".tools", "clients", "protos"):
        (tmp_path / name).symlink_to(ROOT / name)
    ports = {doc_port: free_port() for doc_port in DOC_PORTS}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TITAN_", "USE_REAL"))}
    env["TITAN_ADDRESS"] = f"127.0.0.1:{ports[50051]}"
    session = Shell(tmp_path, env)
    try:
        _, _, err = session.start(
            f"{ROOT / '.venv' / 'bin' / 'titan-grpc'} serve --address 127.0.0.1:{ports[50051]}"
        )
        wait_for(lambda: listening(ports[50051]), "make run's server did not start", err)
        yield session, ports
    finally:
        session.close()


def with_ports(command: str, ports: dict[int, int]) -> str:
    for doc_port, port in ports.items():
        # Only HOST:PORT spellings: "30000" in a price is not port 3000.
        command = re.sub(rf"(?<=:){doc_port}\b", str(port), command)
    return command


def test_the_documents_have_the_commands_this_test_expects() -> None:
    found = documented_commands()
    text = "\n".join(command for _, command in found)
    for expected in ("openssl req -x509", "titan-grpc serve", "StreamQuotes", "grpcurl -cacert"):
        assert expected in text
    assert "../" not in (ROOT / "README.md").read_text()  # no links out of the repository
    assert not re.search(r'^\s*\w+="\$\w+ ', text, re.M)  # no CMD="$X …"; $CMD word splitting


def test_every_documented_command_runs(shell: tuple[Shell, dict[int, int]]) -> None:
    session, ports = shell
    ran = 0
    for doc, written in documented_commands():
        command = with_ports(written, ports)
        where = f"{doc}: {written}"
        if command.startswith("make "):
            continue  # make test has done the set-up
        if "titan-grpc serve" in command:
            port = next(p for d, p in ports.items() if str(d) in written)
            _, _, err = session.start(command)
            wait_for(lambda port=port: listening(port), f"{where}: did not start", err)
        elif "Stream" in command or ":stream" in command:
            pid, out, err = session.start(command)
            wait_for(lambda out=out: '"quote"' in _read(out), f"{where}: no quote", err)
            session.interrupt(pid)
        else:
            code, out_text, err_text = session.run(command)
            if '"nowhere"' in command:
                assert code != 0 and "invalid_argument" in err_text.lower(), where
            else:
                assert code == 0, f"{where}\nexit {code}\n{out_text}\n{err_text}"
        ran += 1
    assert ran >= 30
