"""Hostile input through a real gRPC channel: every RPC of every service, with
hypothesis-generated messages of the right shape (huge strings, negative and
NaN numbers, unknown enum values, deep nesting) and with garbage bytes, as an
admin, an institution-admin, a researcher and a site.

No call may answer INTERNAL or UNKNOWN; the broker keeps serving; and a call that
is refused leaves the database exactly as it was, but for its line in the audit log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor as gd
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minga.scheduler.api.authz import RPC_ROLES
from minga.v1 import admin_pb2, common_pb2, job_pb2, site_pb2
from tests.fixtures_broker import RunningBroker, bearer, build_message, start_broker

SERVICES = [d for module in (job_pb2, admin_pb2, site_pb2) for d in module.DESCRIPTOR.services_by_name.values()]
# RotateToken has no fields to fuzz, and a success would retire the token the fuzzing
# calls with; tests/test_tokens.py covers it.
NOT_FUZZED = {"/minga.v1.AdminService/RotateToken"}
ALL_METHODS = [(f"/{s.full_name}/{m.name}", m) for s in SERVICES for m in s.methods]
METHODS = [(path, m) for path, m in ALL_METHODS if path not in NOT_FUZZED]
BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
F = gd.FieldDescriptor

# Strings that break naive code: empty, huge, control characters, traversal, SQL, format specs.
NASTY_TEXT = st.sampled_from(
    [
        "",
        "x" * 100_000,
        "../../etc/passwd",
        "'; DROP TABLE jobs; --",
        "%s%n{0}",
        "\x00",
        "é" * 70,
        "A100\n",
        "sha256:" + "0" * 64,
    ]
)
INT_EDGES = st.sampled_from([0, -1, 1, 2**31 - 1, -(2**31), 10**9])


def _scalar(field: gd.FieldDescriptor) -> st.SearchStrategy:
    if field.type == F.TYPE_STRING:
        return st.one_of(st.text(max_size=40), NASTY_TEXT)
    if field.type == F.TYPE_BYTES:
        return st.binary(max_size=300)
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if field.type == F.TYPE_FLOAT else 64)
    if field.type == F.TYPE_ENUM:
        return st.integers(-3, 12)  # proto3 enums are open: unknown values arrive
    bits = 32 if field.type in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32) else 64
    if field.type in (F.TYPE_UINT32, F.TYPE_FIXED32, F.TYPE_UINT64, F.TYPE_FIXED64):
        return st.one_of(st.integers(0, 2**bits - 1), st.sampled_from([0, 1]))
    return st.one_of(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1), INT_EDGES)


def messages(desc: gd.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any message of type `desc`: each field absent or set to a hostile value."""
    cls = GetMessageClass(desc)
    fields: dict[str, st.SearchStrategy] = {}
    for field in desc.fields:
        if field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            fields[field.name] = st.dictionaries(_scalar(key), _scalar(value), max_size=4)
        elif field.type == F.TYPE_MESSAGE:
            if depth >= 3:
                continue
            inner = messages(field.message_type, depth + 1)
            fields[field.name] = st.lists(inner, max_size=3) if _repeated(field) else inner
        else:
            fields[field.name] = st.lists(_scalar(field), max_size=4) if _repeated(field) else _scalar(field)
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: build_message(cls, values))


def _repeated(field: gd.FieldDescriptor) -> bool:
    return field.is_repeated


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator[tuple[RunningBroker, dict[str, str], str]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    broker = start_broker(tmp)
    broker.institution("uchile", "CL")
    a = broker.admin
    inst_admin = a.admin.AddUser(
        admin_pb2.AddUserRequest(name="ines", institution="uchile", role=common_pb2.ROLE_INSTITUTION_ADMIN),
        metadata=a.md,
    ).token
    tokens = {
        "admin": a.token,
        "institution-admin": inst_admin,
        "researcher": broker.researcher("ana", "uchile").token,
        "site": broker.join("uchile", "dcc"),
        "nobody": "",
    }
    broker.broker.core.cycle.stop()  # no background writes: the database changes only by calls
    yield broker, tokens, str(tmp / "broker.db")
    broker.close()


def dump(db_path: str) -> list[str]:
    """Everything in the store but the audit log, which records refused calls too."""
    with sqlite3.connect(db_path) as conn:
        return [line for line in conn.iterdump() if not line.startswith('INSERT INTO "audit"')]


def call(
    channel: grpc.Channel, path: str, method: gd.MethodDescriptor, request: bytes | Message, token: str
) -> grpc.StatusCode:
    """Send one request (a message, or raw bytes); the status it ends with."""
    raw = request if isinstance(request, bytes) else request.SerializeToString()
    md = bearer(token) if token else None
    try:
        if method.server_streaming and method.client_streaming:
            responses = channel.stream_stream(path, request_serializer=None, response_deserializer=None)(
                iter([raw, raw]), metadata=md, timeout=5
            )
            for _ in zip(range(5), responses, strict=False):
                pass
            responses.cancel()
        elif method.server_streaming:
            for _ in zip(range(5), channel.unary_stream(path)(raw, metadata=md, timeout=5), strict=False):
                pass
        elif method.client_streaming:
            channel.stream_unary(path)(iter([raw]), metadata=md, timeout=5)
        else:
            channel.unary_unary(path)(raw, metadata=md, timeout=5)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_every_rpc_is_in_the_authorization_table() -> None:
    assert {path for path, _ in ALL_METHODS} <= set(RPC_ROLES)


@pytest.mark.parametrize("path,method", METHODS, ids=[p.rsplit("/", 1)[1] for p, _ in METHODS])
def test_hostile_messages_are_refused_cleanly(target, path, method) -> None:
    broker, tokens, db_path = target
    channel = grpc.insecure_channel(broker.address)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(request=st.one_of(messages(method.input_type), st.binary(max_size=200)), who=st.sampled_from(sorted(tokens)))
    def hostile(request: Message | bytes, who: str) -> None:
        before = dump(db_path)
        code = call(channel, path, method, request, tokens[who])
        assert code not in BAD_CODES, f"{path} as {who} answered {code.name} to {request!r:.300}"
        if code is not grpc.StatusCode.OK and path != "/minga.v1.SiteService/Connect":
            assert dump(db_path) == before, f"{path} as {who} was refused ({code.name}) but changed the database"

    try:
        hostile()
    finally:
        channel.close()
    me = broker.admin  # still serving
    assert me.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=me.md).role == common_pb2.ROLE_ADMIN
