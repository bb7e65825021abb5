"""The protos: lint-clean under buf, every element commented, and the committed generated code current."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"

# Field numbers inside descriptor.proto that SourceCodeInfo paths are made of.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM, MESSAGE_ONEOF = 2, 3, 4, 8
ENUM_VALUE, SERVICE_METHOD = 2, 2


def test_generated_code_matches_the_protos():
    r = subprocess.run([sys.executable, "scripts/gen_protos.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_buf_lint_passes():
    if not BUF.exists():
        msg = f"buf is not installed at {BUF}; run `make install` (cd tools && npm install)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    r = subprocess.run([str(BUF), "lint"], cwd=ROOT / "proto", capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def parse(root: Path, files: list[str]) -> list[descriptor_pb2.FileDescriptorProto]:
    """``files`` (relative to ``root``) as protoc parses them, with their comments (source info)."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = ["protoc", f"-I{root}", f"-I{include}", "--include_source_info", f"--descriptor_set_out={out}"]
        assert protoc.main([*args, *files]) == 0, "protoc failed"
        return list(descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file)


def parsed_protos() -> list[descriptor_pb2.FileDescriptorProto]:
    """Every project proto, parsed with its comments."""
    files = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    parsed = parse(PROTO_ROOT, files)
    assert sorted(f.name for f in parsed) == files
    return parsed


def uncommented(fdp: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """The elements of a parsed proto without a leading comment, as "kind name"."""
    comments = {tuple(loc.path): loc.leading_comments.strip() for loc in fdp.source_code_info.location}
    return [f"{kind} {name}" for kind, name, path in elements(fdp) if not comments.get(path)]


def elements(fdp: descriptor_pb2.FileDescriptorProto) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """(kind, full name, SourceCodeInfo path) of every service, rpc, message, field, oneof, enum and value."""

    def enum(e: descriptor_pb2.EnumDescriptorProto, name: str, path: tuple[int, ...]):
        yield "enum", name, path
        for k, v in enumerate(e.value):
            yield "enum value", f"{name}.{v.name}", (*path, ENUM_VALUE, k)

    def message(m: descriptor_pb2.DescriptorProto, name: str, path: tuple[int, ...]):
        if m.options.map_entry:
            return  # the synthetic entry of a map<> field, which has no source of its own
        yield "message", name, path
        for k, f in enumerate(m.field):
            yield "field", f"{name}.{f.name}", (*path, MESSAGE_FIELD, k)
        for k, o in enumerate(m.oneof_decl):
            if not any(f.proto3_optional and f.oneof_index == k for f in m.field):
                yield "oneof", f"{name}.{o.name}", (*path, MESSAGE_ONEOF, k)
        for k, n in enumerate(m.nested_type):
            yield from message(n, f"{name}.{n.name}", (*path, MESSAGE_NESTED, k))
        for k, e in enumerate(m.enum_type):
            yield from enum(e, f"{name}.{e.name}", (*path, MESSAGE_ENUM, k))

    pkg = fdp.package
    for i, s in enumerate(fdp.service):
        yield "service", f"{pkg}.{s.name}", (FILE_SERVICE, i)
        for j, m in enumerate(s.method):
            yield "rpc", f"{pkg}.{s.name}.{m.name}", (FILE_SERVICE, i, SERVICE_METHOD, j)
    for i, m in enumerate(fdp.message_type):
        yield from message(m, f"{pkg}.{m.name}", (FILE_MESSAGE, i))
    for i, e in enumerate(fdp.enum_type):
        yield from enum(e, f"{pkg}.{e.name}", (FILE_ENUM, i))


def test_every_service_rpc_message_field_and_enum_has_a_leading_comment():
    parsed = parsed_protos()
    kinds = {kind for fdp in parsed for kind, _, _ in elements(fdp)}
    # Every kind is there, so an element the walk missed cannot pass unchecked.
    assert {"service", "rpc", "message", "field", "enum", "enum value"} <= kinds, kinds
    gaps = [f"{fdp.name}: {gap}" for fdp in parsed for gap in uncommented(fdp)]
    assert gaps == []


def test_the_comment_check_finds_a_missing_comment(tmp_path):
    (tmp_path / "t.proto").write_text(
        'syntax = "proto3";\npackage t;\n'
        "// A message.\nmessage M {\n  // Commented.\n  int32 a = 1;\n  int32 b = 2;\n  oneof o {\n"
        "    // Commented.\n    int32 c = 3;\n  }\n}\n"
        "enum E {\n  // Commented.\n  E_UNSPECIFIED = 0;\n}\n"
        "// A service.\nservice S {\n  rpc Get(M) returns (M);\n}\n"
    )
    (fdp,) = parse(tmp_path, ["t.proto"])
    assert uncommented(fdp) == ["rpc t.S.Get", "field t.M.b", "oneof t.M.o", "enum t.E"]
