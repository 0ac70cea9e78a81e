"""Working-dir packages in chunks (issue 11, section 3), through a real broker on port 0
over a real SQLite file: a package larger than one gRPC message uploads and an agent
fetches the same bytes; the broker's limit is stated, enforced while reading, and
named in the refusal; a bad digest or a short stream stores nothing.

gRPC's message limit is lowered here (4 MiB on both ends) so a 6 MiB package is
"larger than one message" without writing hundreds of MiB; the code path is the one
a 200 MiB package takes against the real 64/80 MiB limits.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

import minga.cli.client
import minga.scheduler.server
from minga.agent.packages import PackageCache, fetch_from_broker
from minga.cli import errors
from minga.cli.client import BrokerClient
from minga.cli.main import app
from minga.common.domain import InvalidArgument
from minga.scheduler.server import Broker, BrokerConfig
from minga.v1 import common_pb2, job_pb2, site_pb2_grpc
from tests.fixtures_broker import RunningBroker, ScriptedSite, bearer, gpu_inventory

MESSAGE_LIMIT = 4 * 1024 * 1024
SMALL_CHANNEL = [("grpc.max_send_message_length", MESSAGE_LIMIT), ("grpc.max_receive_message_length", MESSAGE_LIMIT)]


def _start(tmp_path: Path, max_package_bytes: int) -> RunningBroker:
    token_file = tmp_path / "admin-token"
    db_url = f"sqlite:///{tmp_path / 'broker.db'}"
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0",
            db_url=db_url,
            admin_token_file=token_file,
            tick_seconds=0.5,
            max_package_bytes=max_package_bytes,
        )
    )
    broker.start()
    return RunningBroker(broker, db_url, token_file)


@pytest.fixture
def small_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """One gRPC message holds at most 4 MiB, on the broker and in the CLI."""
    monkeypatch.setattr(minga.scheduler.server, "MAX_MESSAGE_BYTES", MESSAGE_LIMIT)
    monkeypatch.setattr(minga.cli.client, "CHANNEL_OPTIONS", SMALL_CHANNEL)


@pytest.fixture
def federation(tmp_path: Path, small_messages: None) -> Iterator[tuple[RunningBroker, str, str]]:
    """A broker accepting packages up to 16 MiB; a researcher's token and a site's token."""
    running = _start(tmp_path, 16 * 1024 * 1024)
    running.institution("uchile", "CL")
    ana = running.researcher("ana", "uchile").token
    site_token = running.join("uchile", "dcc")
    yield running, ana, site_token
    running.close()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _has(broker: RunningBroker, token: str, digest: str) -> bool:
    caller = broker.caller(token)
    return caller.jobs.HasPackage(job_pb2.HasPackageRequest(digest=digest), metadata=caller.md).present


def test_a_package_larger_than_one_message_uploads_and_the_agent_fetches_it(federation, tmp_path: Path) -> None:
    broker, ana, site_token = federation
    weights = os.urandom(6 * 1024 * 1024)  # incompressible: the zip is larger than 4 MiB too
    package = _zip({"train.py": b"print('hi')\n", "weights.bin": weights})
    digest = _digest(package)
    assert len(package) > MESSAGE_LIMIT
    with BrokerClient(broker.address, ana) as client:
        with pytest.raises(grpc.RpcError) as one_message:  # the premise: one message cannot carry it
            client._call(lambda s: s.jobs.UploadPackage, job_pb2.UploadPackageRequest(digest=digest, data=package))
        assert one_message.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        limits = client.package_limits()
        assert limits is not None and limits.max_package_bytes == 16 * 1024 * 1024
        assert "--max-package-bytes" in limits.setting
        assert client.ensure_package(digest, package) is True
        assert client.ensure_package(digest, package) is False  # content-addressed: not sent twice

    # A site with a run that uses the package may fetch it, in chunks, through a small channel.
    site = ScriptedSite(broker.address, site_token, gpu_inventory("A100", 4))
    try:
        site.next("welcome")
        caller = broker.caller(ana)
        spec = common_pb2.JobSpec(
            entrypoint="python train.py",
            resources=common_pb2.Resources(gpus=1),
            max_attempts=1,
            runtime_env=common_pb2.RuntimeEnv(working_dir_digest=digest),
        )
        caller.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=caller.md)
        assert site.next("start").start.spec.runtime_env.working_dir_digest == digest
        with grpc.insecure_channel(broker.address, options=SMALL_CHANNEL) as channel:
            stub = site_pb2_grpc.SiteServiceStub(channel)
            fetched = fetch_from_broker(stub, digest, bearer(site_token), timeout=60)
            assert fetched == package
            unpacked = PackageCache(
                tmp_path / "cache", lambda d: fetch_from_broker(stub, d, bearer(site_token), timeout=60)
            ).get(digest)
        assert (unpacked / "weights.bin").read_bytes() == weights
    finally:
        site.close()


def test_over_the_limit_is_refused_with_the_limit_named_and_nothing_stored(federation) -> None:
    broker, ana, _ = federation
    package = _zip({"big.bin": os.urandom(17 * 1024 * 1024)})
    digest = _digest(package)
    with BrokerClient(broker.address, ana) as client, pytest.raises(grpc.RpcError) as refused:
        client.upload_package(digest, package)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(16 * 1024 * 1024) in refused.value.details()
    assert "--max-package-bytes" in refused.value.details()
    assert not _has(broker, ana, digest)


def test_a_stream_that_lies_about_its_size_is_cut_at_the_limit(federation) -> None:
    """An endless stream announcing a small size: the broker stops reading at its limit
    and answers; without that this call would never end."""
    broker, ana, _ = federation
    digest = "sha256:" + "ab" * 32

    def endless() -> Iterator[common_pb2.PackageChunk]:
        yield common_pb2.PackageChunk(digest=digest, size=10, data=b"x" * 1024 * 1024)
        for _ in itertools.count():
            yield common_pb2.PackageChunk(data=b"x" * 1024 * 1024)

    caller = broker.caller(ana)
    with pytest.raises(grpc.RpcError) as refused:
        caller.jobs.UploadPackageStream(endless(), metadata=caller.md, timeout=120)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "accepts at most" in refused.value.details()
    assert not _has(broker, ana, digest)


def test_a_declared_size_over_the_limit_is_refused_at_once(federation) -> None:
    broker, ana, _ = federation
    caller = broker.caller(ana)
    first = common_pb2.PackageChunk(digest="sha256:" + "cd" * 32, size=1 << 40, data=b"x")
    with pytest.raises(grpc.RpcError) as refused:
        caller.jobs.UploadPackageStream(iter([first]), metadata=caller.md, timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "accepts at most" in refused.value.details()


@pytest.mark.parametrize("case", ["bad digest", "short stream", "two digests", "empty stream"])
def test_a_bad_upload_stores_nothing(federation, case: str) -> None:
    broker, ana, _ = federation
    package = _zip({"a.py": b"x" * 3_000_000})
    digest = _digest(package)
    chunks = list(minga.cli.client.package_chunks(digest, package, 1024 * 1024))
    if case == "bad digest":
        digest = "sha256:" + "0" * 64
        chunks[0].digest = digest
    elif case == "short stream":
        chunks = chunks[:-1]
    elif case == "two digests":
        chunks[1].digest = "sha256:" + "1" * 64
    else:
        chunks = []
    caller = broker.caller(ana)
    with pytest.raises(grpc.RpcError) as refused:
        caller.jobs.UploadPackageStream(iter(chunks), metadata=caller.md, timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    expected = {
        "bad digest": "does not match",
        "short stream": "announced",
        "two digests": "two different",
        "empty stream": "empty package upload",
    }[case]
    assert expected in refused.value.details()
    assert not _has(broker, ana, digest)
    assert caller.jobs.GetPackageLimits(job_pb2.GetPackageLimitsRequest(), metadata=caller.md).chunk_bytes > 0


def test_cli_uploads_past_one_message_and_names_the_brokers_setting_when_too_big(
    federation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, ana, _ = federation
    monkeypatch.delenv("MINGA_MAX_PACKAGE_BYTES", raising=False)
    fits = tmp_path / "fits"
    fits.mkdir()
    (fits / "weights.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    args = ["--broker", broker.address, "--token", ana]
    ok = CliRunner().invoke(app, ["job", "submit", "--working-dir", str(fits), *args, "--", "true"])
    assert ok.exit_code == 0, ok.output
    assert "uploaded" in ok.stderr

    too_big = tmp_path / "too-big"
    too_big.mkdir()
    (too_big / "weights.bin").write_bytes(os.urandom(17 * 1024 * 1024))
    refused = CliRunner().invoke(app, ["job", "submit", "--working-dir", str(too_big), *args, "--", "true"])
    assert refused.exit_code == errors.EXIT_USAGE
    assert "16.0 MiB" in refused.stderr and "--max-package-bytes" in refused.stderr
    assert "MINGA_MAX_PACKAGE_BYTES" not in refused.stderr  # raising it would not help


@pytest.mark.parametrize("limit", [0, -1, 600 * 1024 * 1024])
def test_a_broker_refuses_a_limit_it_cannot_keep(tmp_path: Path, limit: int) -> None:
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0",
            db_url=f"sqlite:///{tmp_path / 'b.db'}",
            admin_token_file=tmp_path / "admin-token",
            max_package_bytes=limit,
        )
    )
    with pytest.raises(InvalidArgument, match="--max-package-bytes"):
        broker.start()
