"""Regenerates the Python stubs in xling/v1 from protos/xling/v1/*.proto.

Run ``python protos/generate.py`` (``make proto``) after editing a .proto;
``--check`` exits non-zero when the committed stubs are stale, which the test
suite asserts. Never edit xling/v1 by hand.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = Path("xling/v1")
INIT = '"""Generated protobuf and gRPC stubs of the xling.v1 API. Do not edit."""\n'


def generate(out_dir: Path) -> list[Path]:
    """Writes the stubs under ``out_dir/xling/v1`` and returns their paths."""
    (out_dir / PACKAGE).mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_dir / PACKAGE / "__init__.py").write_text(INIT)
    return sorted((out_dir / PACKAGE).glob("*.py*"))


def stale_files() -> list[str]:
    """Names of stubs in the tree that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p for p in generate(Path(tmp))}
        current = {p.name: p for p in (ROOT / PACKAGE).glob("*.py*")}
        names = sorted(fresh.keys() | current.keys())
        return [
            n
            for n in names
            if n not in fresh or n not in current or not filecmp.cmp(fresh[n], current[n], False)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    if parser.parse_args().check:
        stale = stale_files()
        if stale:
            sys.exit(f"stale generated stubs: {', '.join(stale)}; run: python protos/generate.py")
        print("generated stubs are up to date")
    else:
        for path in generate(ROOT):
            print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
