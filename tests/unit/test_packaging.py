"""pyproject.toml keeps ranges; requirements.lock pins exact hashed versions inside them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def test_the_lock_pins_every_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)
    }
    assert "--hash=sha256:" in lock
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in requirements.lock: run make lock"
        assert requirement.specifier.contains(pinned[name]), (
            f"requirements.lock pins {name}=={pinned[name]} outside {requirement.specifier}: "
            "run make lock"
        )


def test_the_server_needs_no_dev_tools_and_declares_what_it_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {canonicalize_name(Requirement(text).name) for text in project["dependencies"]}
    assert {"yarl", "aiohttp", "grpcio-channelz", "googleapis-common-protos"} <= names
    assert not names & {"grpcio-tools", "mypy-protobuf", "pytest"}
    assert "otel" in project["optional-dependencies"]
