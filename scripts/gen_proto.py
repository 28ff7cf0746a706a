"""Generate the Python gRPC code for protos/ into titan_grpc/gen/ (or any folder).

Used by ``make`` (into the source tree) and by ``setup.py`` when a wheel or an install is
built (into the build folder), so ``pip install .`` needs no generated code checked in.

grpcio-tools emits absolute imports (``from titan.v1 import exchange_pb2``) that only
work when the output folder is on sys.path; we rewrite them to the package path so the
generated code lives inside ``titan_grpc`` like any other module. Imports of other
packages' protos (``google/api/annotations.proto`` from googleapis-common-protos,
``google/protobuf/*`` from protobuf) are left alone: those packages are run-time
dependencies and ship the generated modules themselves.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT = ROOT / "titan_grpc" / "gen"
GEN_PACKAGE = "titan_grpc.gen"


def include_paths() -> list[Path]:
    """protoc -I folders: our protos, protobuf's well-known types (shipped by grpcio-tools),
    and googleapis-common-protos' ``google/api/*.proto`` (it ships the .proto sources)."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    paths = [PROTO_ROOT, Path(protoc.__file__).parent / "_proto"]
    try:
        from google.api import annotations_pb2
    except ImportError:  # googleapis-common-protos missing: only needed when a proto imports it
        return paths
    google_root = Path(annotations_pb2.__file__).resolve().parents[2]
    if (google_root / "google" / "api" / "annotations.proto").is_file():
        paths.append(google_root)
    return paths


def _plugin(folder: Path, name: str, function: str) -> Path:
    """A protoc plugin script calling ``mypy_protobuf.main.<function>`` with this interpreter
    (mypy-protobuf's console scripts are not on PATH inside pip's isolated build envs)."""
    script = folder / f"protoc-gen-{name}"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom mypy_protobuf.main import {function}\n"
        f"sys.exit({function}())\n"
    )
    script.chmod(0o755)
    return script


def generate(out: Path = OUT, proto_root: Path = PROTO_ROOT) -> None:
    """Write the generated modules (and .pyi stubs when mypy-protobuf is installed)."""
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as plugins:
        args = [
            "protoc",
            *(f"-I{path}" for path in include_paths()),
            f"--python_out={out}",
            f"--grpc_python_out={out}",
        ]
        try:
            import mypy_protobuf  # type: ignore[import-untyped]  # noqa: F401
        except ImportError:
            pass  # stubs are for type checking only; a plain install does without them
        else:
            mypy = _plugin(Path(plugins), "mypy", "main")
            mypy_grpc = _plugin(Path(plugins), "mypy_grpc", "grpc")
            args += [
                f"--plugin=protoc-gen-mypy={mypy}",
                f"--plugin=protoc-gen-mypy_grpc={mypy_grpc}",
                f"--mypy_out={out}",
                f"--mypy_grpc_out={out}",
            ]
        if protoc.main([*args, *protos]) != 0:
            raise RuntimeError("protoc failed on " + " ".join(protos))
    top_packages = {Path(p).parts[0] for p in protos}
    for path in out.rglob("*.py*"):
        if path.suffix not in (".py", ".pyi"):
            continue
        text = path.read_text()
        for top in top_packages:
            text = re.sub(rf"^(from|import) {top}\.", rf"\1 {GEN_PACKAGE}.{top}.", text, flags=re.M)
            text = re.sub(
                rf"\b(?<!\.){top}\.v1\.exchange_pb2\b", f"{GEN_PACKAGE}.{top}.v1.exchange_pb2", text
            )
        path.write_text(text)
    for folder in [out, *[d for d in out.rglob("*") if d.is_dir()]]:
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text("")
    (out / "py.typed").write_text("")


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    try:
        generate()
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
