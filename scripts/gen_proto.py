"""Generate the Python gRPC code for protos/ into titan_grpc/gen/.

grpcio-tools emits absolute imports (``from titan.v1 import exchange_pb2``) that only
work when the output folder is on sys.path; we rewrite them to the package path so the
generated code lives inside ``titan_grpc`` like any other module.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from google.api import annotations_pb2
from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT = ROOT / "titan_grpc" / "gen"
GEN_PACKAGE = "titan_grpc.gen"


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    OUT.mkdir(parents=True, exist_ok=True)
    proto_include = Path(protoc.__file__).parent / "_proto"
    # google/api/annotations.proto and http.proto ship in the googleapis-common-protos wheel,
    # whose Python modules the generated code imports at run time.
    googleapis_include = Path(annotations_pb2.__file__).parent.parent.parent
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO_ROOT}",
        f"-I{proto_include}",
        f"-I{googleapis_include}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *protos,
    ]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    top_packages = {Path(p).parts[0] for p in protos}
    for path in OUT.rglob("*.py*"):
        if path.suffix not in (".py", ".pyi"):
            continue
        text = path.read_text()
        for top in top_packages:
            text = re.sub(rf"^(from|import) {top}\.", rf"\1 {GEN_PACKAGE}.{top}.", text, flags=re.M)
            text = re.sub(
                rf"\b(?<!\.){top}\.v1\.exchange_pb2\b", f"{GEN_PACKAGE}.{top}.v1.exchange_pb2", text
            )
        path.write_text(text)
    for folder in [OUT, *[d for d in OUT.rglob("*") if d.is_dir()]]:
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text("")
    (OUT / "py.typed").write_text("")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
