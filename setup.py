"""Build hook: generate titan_grpc/gen from protos/ whenever a wheel or an install is built.

Generated code is not committed (see README, "Generated code"); this makes ``pip install .``
and ``pip wheel .`` produce it with the grpcio-tools from ``[build-system] requires``.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "_titan_gen_proto", HERE / "scripts" / "gen_proto.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        super().run()
        gen = _generator()
        # Editable installs import from the source tree; wheels from the build folder.
        target = gen.OUT if self.editable_mode else Path(self.build_lib) / "titan_grpc" / "gen"
        shutil.rmtree(target, ignore_errors=True)  # never ship modules of a removed .proto
        gen.generate(target)


setup(cmdclass={"build_py": BuildPyWithProtos})
