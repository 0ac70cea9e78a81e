"""The committed minga.v1 stubs match what `make proto` generates, and the wire
enums follow the proto3 rule of a zero value named *_UNSPECIFIED."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto" / "minga" / "v1"
PROTOS = sorted(PROTO_DIR.glob("*.proto"))
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def test_there_are_protos():
    assert {p.name for p in PROTOS} >= {"common.proto", "job.proto", "site.proto", "admin.proto"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """Run the same protoc command as the Makefile's `proto` target, into a temp dir."""
    out = tmp_path_factory.mktemp("stubs")
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-Iproto",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--pyi_out={out}",
        *(str(p.relative_to(ROOT)) for p in PROTOS),
    ]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"protoc failed:\n{result.stderr}"
    return out / "minga" / "v1"


def test_makefile_target_uses_the_same_command():
    """If the Makefile's command changes, this test must change with it."""
    makefile = (ROOT / "Makefile").read_text()
    assert (
        "-m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto --pyi_out=proto $(PROTOS)"
    ) in makefile


def test_every_proto_has_committed_stubs():
    missing = [f"{p.stem}{s}" for p in PROTOS for s in SUFFIXES if not (PROTO_DIR / f"{p.stem}{s}").exists()]
    assert not missing, f"stubs missing under proto/minga/v1: {missing}; run `make proto` and commit them"


@pytest.mark.parametrize("name", [f"{p.stem}{s}" for p in PROTOS for s in SUFFIXES])
def test_committed_stub_is_fresh(generated, name):
    fresh = generated / name
    committed = PROTO_DIR / name
    assert fresh.exists(), f"protoc no longer generates {name}; remove it or fix the Makefile"
    assert committed.exists(), f"proto/minga/v1/{name} is not committed: run `make proto` and commit it"
    assert committed.read_bytes() == fresh.read_bytes(), (
        f"proto/minga/v1/{name} is stale: run `make proto` and commit the result"
    )


def test_no_generated_file_is_left_uncommitted(generated):
    extra = sorted(p.name for p in generated.iterdir() if not (PROTO_DIR / p.name).exists())
    assert not extra, f"generated but not committed: {extra}; run `make proto`"


def _all_enums():
    for proto in PROTOS:
        module = importlib.import_module(f"minga.v1.{proto.stem}_pb2")
        fd = module.DESCRIPTOR
        yield from ((fd.name, e) for e in fd.enum_types_by_name.values())
        stack = list(fd.message_types_by_name.values())
        while stack:
            msg = stack.pop()
            yield from ((fd.name, e) for e in msg.enum_types)
            stack.extend(msg.nested_types)


def test_enums_were_found():
    names = {e.name for _, e in _all_enums()}
    assert {"JobState", "RunState", "SiteState", "Role"} <= names


@pytest.mark.parametrize(
    ("file", "enum"), [(f, e) for f, e in _all_enums()], ids=[e.full_name for _, e in _all_enums()]
)
def test_enum_zero_is_unspecified(file, enum):
    zero = enum.values_by_number.get(0)
    assert zero is not None, f"{file}: enum {enum.full_name} has no value 0"
    assert zero.name.endswith("_UNSPECIFIED"), (
        f"{file}: enum {enum.full_name} value 0 is {zero.name}, not *_UNSPECIFIED"
    )
    # Prefixed by the enum's own name in UPPER_SNAKE, as the style guide asks.
    prefix = "".join(f"_{c}" if c.isupper() else c for c in enum.name).lstrip("_").upper()
    assert zero.name == f"{prefix}_UNSPECIFIED"
