"""Hostile input: archives that try to write outside their directory, messages over the
size cap, and a site stream that never stops talking. Each is refused with a clear
status, nothing is written or changed, and the broker keeps serving everyone else."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from pathlib import Path

import grpc
import pytest

from minga.agent.packages import PackageError, safe_extract
from minga.cli import workdir
from minga.scheduler.server import MAX_MESSAGE_BYTES, Broker, BrokerConfig
from minga.v1 import common_pb2, job_pb2, job_pb2_grpc, site_pb2
from tests.fixtures_broker import RunningBroker, ScriptedSite, gpu_inventory


def _zip(*entries: tuple[str, bytes, int]) -> bytes:
    """A zip of (name, data, unix mode with file type) entries, written raw."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


FILE = stat.S_IFREG | 0o644
LINK = stat.S_IFLNK | 0o777
HOSTILE = {
    "dot-dot": _zip(("ok.py", b"1", FILE), ("../escaped.py", b"x", FILE)),
    "nested dot-dot": _zip(
        ("a/../../escaped.py", b"x", FILE),
    ),
    "absolute": _zip(
        ("/tmp/escaped.py", b"x", FILE),
    ),
    "windows drive": _zip(
        ("C:/escaped.py", b"x", FILE),
    ),
    "backslashes": _zip(
        ("a\\..\\..\\escaped.py", b"x", FILE),
    ),
    "symlink out": _zip(
        ("link", b"/etc/passwd", LINK),
    ),
    "symlink then write through it": _zip(("d", b"..", LINK), ("d/escaped.py", b"x", FILE)),
    "fifo": _zip(
        ("pipe", b"", stat.S_IFIFO | 0o644),
    ),
}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_archive_is_refused_by_the_agent_and_nothing_lands_outside(tmp_path: Path, name: str) -> None:
    dest = tmp_path / "unpack" / "here"
    dest.mkdir(parents=True)
    with pytest.raises(PackageError):
        safe_extract(HOSTILE[name], dest)
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["here", "unpack"]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_duplicate_entries_cannot_replace_each_other(tmp_path: Path) -> None:
    """Zip has no hard links; the nearest trick, a second entry of one name, is refused."""
    data = _zip(("a.py", b"first", FILE), ("a.py", b"second", FILE))
    with pytest.raises(PackageError, match="cannot be unpacked"):
        safe_extract(data, tmp_path)


def test_a_hostile_archive_is_refused_at_upload(broker: RunningBroker) -> None:
    broker.institution("uchile", "CL")
    alice = broker.researcher("alice", "uchile")
    for name, data in HOSTILE.items():
        with pytest.raises(grpc.RpcError) as exc:
            alice.jobs.UploadPackage(job_pb2.UploadPackageRequest(digest=_digest(data), data=data), metadata=alice.md)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert "package entry" in exc.value.details(), name
        assert not alice.jobs.HasPackage(job_pb2.HasPackageRequest(digest=_digest(data)), metadata=alice.md).present
    good = _zip(("main.py", b"print(1)", FILE))
    alice.jobs.UploadPackage(job_pb2.UploadPackageRequest(digest=_digest(good), data=good), metadata=alice.md)


def test_packing_refuses_a_symlink_that_points_outside_the_working_dir(tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text("print(1)")
    (root / "inside.py").symlink_to(root / "train.py")
    assert workdir.pack(root).files == 2  # a link inside the dir is fine
    (root / "key").symlink_to(secret)
    with pytest.raises(workdir.PackageError, match="symlink .* outside the working dir"):
        workdir.pack(root)


def _other_caller_is_served(broker: RunningBroker) -> None:
    alice = broker.researcher(f"u{os.urandom(3).hex()}", "uchile")
    alice.jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=alice.md)


def test_a_message_over_the_size_cap_is_refused_and_the_broker_keeps_serving(broker: RunningBroker) -> None:
    broker.institution("uchile", "CL")
    alice = broker.researcher("alice", "uchile")
    big = grpc.insecure_channel(broker.address, options=[("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES)])
    try:
        data = b"\0" * (MAX_MESSAGE_BYTES + 1024)
        stub = job_pb2_grpc.JobServiceStub(big)
        with pytest.raises(grpc.RpcError) as exc:
            stub.UploadPackage(job_pb2.UploadPackageRequest(digest=_digest(data), data=data), metadata=alice.md)
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not alice.jobs.HasPackage(job_pb2.HasPackageRequest(digest=_digest(data)), metadata=alice.md).present
        # A site stream sending one message over the cap is cut the same way.
        site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4), channel=big)
        try:
            site.next("welcome")
            site.outbox.put(site_pb2.AgentMessage(log=common_pb2.LogChunk(run_id="r", data=data)))
            assert site.ended.wait(10)
            assert site.error is not None and site.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            site.close()
    finally:
        big.close()
    _other_caller_is_served(broker)


def test_an_endless_site_stream_is_cut_and_the_broker_keeps_serving(tmp_path: Path) -> None:
    token_file = tmp_path / "admin-token"
    db_url = f"sqlite:///{tmp_path / 'broker.db'}"
    b = Broker(
        BrokerConfig(listen="127.0.0.1:0", db_url=db_url, admin_token_file=token_file, tick_seconds=0.5, rate_limit=5)
    )  # a stream may send 50 messages/s, in bursts of 500
    b.start()
    broker = RunningBroker(b, db_url, token_file)
    try:
        broker.institution("uchile", "CL")
        token = broker.join("uchile", "dcc")
        site = ScriptedSite(broker.address, token, gpu_inventory("A100", 4))
        try:
            site.next("welcome")
            for _ in range(2000):  # far past the burst, as fast as it can
                site.heartbeat()
            assert site.ended.wait(20), "the flooding stream was never cut"
            assert site.error is not None and site.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "messages per second" in site.error.details() and "retry in" in site.error.details()
        finally:
            site.close()
        _other_caller_is_served(broker)
        again = ScriptedSite(broker.address, token, gpu_inventory("A100", 4))  # the site itself may come back
        try:
            assert again.next("welcome").welcome.site == "dcc"
        finally:
            again.close()
    finally:
        broker.close()
