"""The agent's session against a fake broker (real gRPC on a free port) and a fake
Ray backend: recovery in Hello, idempotent starts, stops, logs before the terminal
report, and reconnecting after a broker restart without losing anything."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from minga.agent.backend import RunRequest
from minga.agent.session import Agent, AgentConfig
from minga.common.domain import RunState
from minga.v1 import common_pb2
from tests.fakes.fake_backend import FakeBackend
from tests.fakes.fake_broker import FakeBroker, make_start_run

S = common_pb2
INVENTORY = common_pb2.Inventory(
    gpus=[common_pb2.GpuPool(model="A100", total=4, free=4, largest_node=4)], cpus=8, nodes=1
)


def fast_config(broker: FakeBroker, tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        broker=broker.address,
        token=broker.token,
        ray_dashboard_url="http://unused",
        poll_seconds=0.01,
        log_seconds=0.05,
        heartbeat_seconds=0.2,
        inventory_seconds=0.1,
        replay_seconds=0.5,
        backoff_initial=0.05,
        backoff_max=0.3,
        cache_dir=tmp_path / "cache",
    )


class Site:
    """A fake broker, a fake Ray and a real agent between them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.broker = FakeBroker().start()
        self.backend = FakeBackend()
        self.inventory = common_pb2.Inventory()
        self.inventory.CopyFrom(INVENTORY)
        self.agent: Agent | None = None

    def start_agent(self) -> Agent:
        self.agent = Agent(
            fast_config(self.broker, self.tmp_path), backend=self.backend, inventory_source=lambda: self.inventory
        ).start()
        assert self.broker.wait_for(lambda: len(self.broker.hellos) >= 1 and self.broker.connected())
        return self.agent

    def restart_broker(self, keep: int | None = None) -> None:
        """Stop the broker and make a new one on the same port (not yet started).
        `keep`: how many received messages survive; the rest were "in flight"."""
        port = self.broker.port
        old = self.broker
        old.stop()
        self.broker = FakeBroker(port=port)
        self.broker.received = list(old.received[:keep])  # one history across restarts
        self.broker.hellos = list(old.hellos)

    def close(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        self.broker.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.close()


def request(run_id: str, job_id: str = "j-1", epoch: int = 3) -> RunRequest:
    return RunRequest(run_id=run_id, job_id=job_id, epoch=epoch, entrypoint="python train.py")


def test_hello_carries_inventory_and_recovered_runs(site: Site) -> None:
    site.backend.add_run(request("minga-j-1-a1", "j-1", 3), RunState.RUNNING)
    site.backend.add_run(request("minga-j-2-a1", "j-2", 5), RunState.SUCCEEDED)
    site.backend.add_run(request("raysubmit_other", "x", 1), RunState.RUNNING)  # not ours
    site.start_agent()
    hello = site.broker.hellos[0]
    assert hello.inventory == INVENTORY
    got = {(r.run_id, r.job_id, r.epoch, r.state) for r in hello.runs}
    assert got == {("minga-j-1-a1", "j-1", 3, S.RUN_STATE_RUNNING), ("minga-j-2-a1", "j-2", 5, S.RUN_STATE_SUCCEEDED)}
    assert site.broker.kinds()[0] == "hello"


def test_start_run_submits_once_even_if_sent_twice(site: Site) -> None:
    site.start_agent()
    start = make_start_run("minga-j-1-a1", "j-1", epoch=2, entrypoint="python train.py", gpus=2, gpu_model="A100")
    site.broker.start_run(start)
    site.broker.start_run(start)
    assert site.broker.wait_for(lambda: S.RUN_STATE_STARTING in site.broker.states("minga-j-1-a1"))
    site.backend.set_state("minga-j-1-a1", RunState.RUNNING)
    assert site.broker.wait_for(lambda: S.RUN_STATE_RUNNING in site.broker.states("minga-j-1-a1"))
    assert [r.run_id for r in site.backend.submissions] == ["minga-j-1-a1"]
    submitted = site.backend.submissions[0]
    assert (submitted.gpus, submitted.gpu_model, submitted.cpus, submitted.epoch) == (2, "A100", 1.0, 2)
    report = site.broker.reports("minga-j-1-a1")[-1]
    assert (report.job_id, report.epoch) == ("j-1", 2)


def test_a_run_already_on_ray_is_not_submitted_again(site: Site) -> None:
    site.backend.add_run(request("minga-j-1-a1"), RunState.RUNNING)
    site.start_agent()
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1", epoch=3))
    site.backend.set_state("minga-j-1-a1", RunState.SUCCEEDED)
    assert site.broker.wait_for(lambda: S.RUN_STATE_SUCCEEDED in site.broker.states("minga-j-1-a1"))
    assert site.backend.submissions == []


def test_failed_submit_is_reported_as_failed(site: Site) -> None:
    site.backend.submit_error = RuntimeError("no such resource")
    site.start_agent()
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1"))
    assert site.broker.wait_for(lambda: S.RUN_STATE_FAILED in site.broker.states("minga-j-1-a1"))
    assert "no such resource" in site.broker.reports("minga-j-1-a1")[-1].message


def test_stop_run_stops_on_ray_and_reports_stopped(site: Site) -> None:
    site.start_agent()
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1"))
    assert site.broker.wait_for(lambda: S.RUN_STATE_STARTING in site.broker.states("minga-j-1-a1"))
    site.backend.set_state("minga-j-1-a1", RunState.RUNNING)
    assert site.broker.wait_for(lambda: S.RUN_STATE_RUNNING in site.broker.states("minga-j-1-a1"))
    site.broker.stop_run("minga-j-1-a1", reason="cancelled")
    assert site.broker.wait_for(lambda: S.RUN_STATE_STOPPED in site.broker.states("minga-j-1-a1"))
    assert site.backend.stops == ["minga-j-1-a1"]


def test_stop_of_an_unknown_run_reports_unknown(site: Site) -> None:
    site.start_agent()
    site.broker.stop_run("minga-j-9-a1")
    assert site.broker.wait_for(lambda: site.broker.states("minga-j-9-a1") == [S.RUN_STATE_UNKNOWN])


def test_logs_arrive_complete_and_before_the_terminal_report(site: Site) -> None:
    site.start_agent()
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1"))
    assert site.broker.wait_for(lambda: S.RUN_STATE_STARTING in site.broker.states("minga-j-1-a1"))
    site.backend.set_state("minga-j-1-a1", RunState.RUNNING)
    expected = ""
    for i in range(5):
        line = f"step {i} ñ\n"
        expected += line
        site.backend.append_log("minga-j-1-a1", line)
        assert site.broker.wait_for(lambda: site.broker.log("minga-j-1-a1") == expected.encode())
    # The last line and the end come together: the agent must flush the log first.
    site.backend.append_log("minga-j-1-a1", "done\n")
    site.backend.set_state("minga-j-1-a1", RunState.SUCCEEDED)
    assert site.broker.wait_for(lambda: S.RUN_STATE_SUCCEEDED in site.broker.states("minga-j-1-a1"))
    assert site.broker.log("minga-j-1-a1") == (expected + "done\n").encode()
    kinds = [
        (m.WhichOneof("body"), m.run.state) for m in site.broker.received if m.WhichOneof("body") in ("log", "run")
    ]
    last_log = max(i for i, k in enumerate(kinds) if k[0] == "log")
    terminal = kinds.index(("run", S.RUN_STATE_SUCCEEDED))
    assert last_log < terminal


def test_heartbeats_and_inventory_updates_are_sent(site: Site) -> None:
    site.start_agent()
    assert site.broker.wait_for(lambda: "heartbeat" in site.broker.kinds())
    site.inventory = common_pb2.Inventory(nodes=2)
    assert site.broker.wait_for(
        lambda: any(
            m.WhichOneof("body") == "inventory" and m.inventory.inventory.nodes == 2 for m in site.broker.received
        )
    )


def test_reconnects_after_a_broker_restart_and_loses_nothing(site: Site) -> None:
    agent = site.start_agent()
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1", epoch=4))
    assert site.broker.wait_for(lambda: S.RUN_STATE_STARTING in site.broker.states("minga-j-1-a1"))
    site.backend.set_state("minga-j-1-a1", RunState.RUNNING)
    site.backend.append_log("minga-j-1-a1", "before\n")
    assert site.broker.wait_for(lambda: site.broker.log("minga-j-1-a1") == b"before\n")

    site.restart_broker()  # stopped: the run goes on and ends while it is down
    site.backend.append_log("minga-j-1-a1", "while the broker was down\n")
    site.backend.set_state("minga-j-1-a1", RunState.SUCCEEDED)
    site.broker.start()

    assert site.broker.wait_for(lambda: len(site.broker.hellos) == 2, timeout=15)
    assert site.broker.wait_for(lambda: S.RUN_STATE_SUCCEEDED in site.broker.states("minga-j-1-a1"))
    assert site.broker.log("minga-j-1-a1") == b"before\nwhile the broker was down\n"
    # Hello says no more than the broker is sure to have had (messages sent just
    # before the break are replayed after it); the end comes after the last log bytes.
    [hello_run] = site.broker.hellos[1].runs
    assert (hello_run.run_id, hello_run.epoch) == ("minga-j-1-a1", 4)
    assert hello_run.state in (S.RUN_STATE_STARTING, S.RUN_STATE_RUNNING)
    after = site.broker.received[[m.WhichOneof("body") for m in site.broker.received].index("hello", 1) :]
    bodies = [m.WhichOneof("body") for m in after if m.WhichOneof("body") in ("log", "run")]
    assert bodies[-1] == "run" and "log" in bodies
    assert len(site.backend.submissions) == 1
    assert agent.sessions == 2


def test_messages_lost_in_a_break_are_sent_again(site: Site) -> None:
    site.start_agent()
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1"))
    assert site.broker.wait_for(lambda: S.RUN_STATE_STARTING in site.broker.states("minga-j-1-a1"))
    mark = len(site.broker.received)
    site.backend.append_log("minga-j-1-a1", "lost in flight\n")
    site.backend.set_state("minga-j-1-a1", RunState.RUNNING)
    assert site.broker.wait_for(lambda: S.RUN_STATE_RUNNING in site.broker.states("minga-j-1-a1"))
    site.restart_broker(keep=mark)  # the broker died before storing them
    assert site.broker.log("minga-j-1-a1") == b""
    site.broker.start()
    assert site.broker.wait_for(lambda: S.RUN_STATE_RUNNING in site.broker.states("minga-j-1-a1"), timeout=15)
    assert site.broker.wait_for(lambda: site.broker.log("minga-j-1-a1") == b"lost in flight\n")


def test_a_restarted_agent_recovers_its_runs_and_never_resubmits(site: Site) -> None:
    agent = site.start_agent()
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1", epoch=7))
    assert site.broker.wait_for(lambda: S.RUN_STATE_STARTING in site.broker.states("minga-j-1-a1"))
    site.backend.set_state("minga-j-1-a1", RunState.RUNNING)
    site.backend.append_log("minga-j-1-a1", "hello\n")
    assert site.broker.wait_for(lambda: site.broker.log("minga-j-1-a1") == b"hello\n")
    agent.stop()

    site.start_agent()  # a new agent process: no memory, only Ray's
    assert site.broker.wait_for(lambda: len(site.broker.hellos) == 2)
    assert [(r.run_id, r.job_id, r.epoch, r.state) for r in site.broker.hellos[1].runs] == [
        ("minga-j-1-a1", "j-1", 7, S.RUN_STATE_RUNNING)
    ]
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1", epoch=7))  # the broker repeats itself
    site.backend.set_state("minga-j-1-a1", RunState.FAILED, "exit code 1")
    assert site.broker.wait_for(lambda: S.RUN_STATE_FAILED in site.broker.states("minga-j-1-a1"))
    assert site.broker.reports("minga-j-1-a1")[-1].message == "exit code 1"
    assert len(site.backend.submissions) == 1


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_working_dir_package_is_fetched_and_unpacked(site: Site) -> None:
    site.start_agent()
    digest = site.broker.add_package(make_zip({"train.py": b"print('hi')"}))
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1", working_dir_digest=digest))
    assert site.broker.wait_for(lambda: S.RUN_STATE_STARTING in site.broker.states("minga-j-1-a1"))
    working_dir = Path(site.backend.submissions[0].working_dir or "")
    assert (working_dir / "train.py").read_bytes() == b"print('hi')"
    assert site.broker.fetches == [digest]


def test_a_package_with_path_traversal_fails_the_run(site: Site) -> None:
    site.start_agent()
    digest = site.broker.add_package(make_zip({"../../escape.py": b"boom"}))
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1", working_dir_digest=digest))
    assert site.broker.wait_for(lambda: S.RUN_STATE_FAILED in site.broker.states("minga-j-1-a1"))
    assert "unsafe path" in site.broker.reports("minga-j-1-a1")[-1].message
    assert site.backend.submissions == []
    assert not (site.tmp_path / "escape.py").exists()


def self_signed(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    """A certificate for 127.0.0.1 that is its own CA: (cert file, key PEM, cert PEM)."""
    pytest.importorskip("cryptography")
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minga-test-broker")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert_pem)
    return path, key_pem, cert_pem


def test_agent_speaks_tls_when_given_a_ca_file(tmp_path: Path) -> None:
    import grpc

    ca_file, key_pem, cert_pem = self_signed(tmp_path)
    broker = FakeBroker(tls=grpc.ssl_server_credentials([(key_pem, cert_pem)])).start()
    config = fast_config(broker, tmp_path)
    config.ca_file = str(ca_file)
    agent = Agent(config, backend=FakeBackend(), inventory_source=lambda: INVENTORY).start()
    try:
        assert broker.wait_for(lambda: len(broker.hellos) == 1 and broker.connected())
    finally:
        agent.stop()
        broker.stop()


def test_no_hello_while_ray_is_down_so_no_run_looks_lost(site: Site) -> None:
    site.backend.add_run(request("minga-j-1-a1"), RunState.RUNNING)
    site.backend.down = True
    site.agent = Agent(
        fast_config(site.broker, site.tmp_path), backend=site.backend, inventory_source=lambda: site.inventory
    ).start()
    assert not site.broker.wait_for(lambda: len(site.broker.hellos) > 0, timeout=1.0)
    site.backend.down = False
    assert site.broker.wait_for(lambda: len(site.broker.hellos) == 1)
    assert [r.run_id for r in site.broker.hellos[0].runs] == ["minga-j-1-a1"]


def test_ray_outage_mid_run_reports_nothing_false(site: Site) -> None:
    site.start_agent()
    site.broker.start_run(make_start_run("minga-j-1-a1", "j-1"))
    assert site.broker.wait_for(lambda: S.RUN_STATE_STARTING in site.broker.states("minga-j-1-a1"))
    site.backend.set_state("minga-j-1-a1", RunState.RUNNING)
    assert site.broker.wait_for(lambda: S.RUN_STATE_RUNNING in site.broker.states("minga-j-1-a1"))
    site.backend.down = True
    assert not site.broker.wait_for(lambda: len(site.broker.states("minga-j-1-a1")) > 2, timeout=0.5)
    site.backend.down = False
    site.backend.set_state("minga-j-1-a1", RunState.SUCCEEDED)
    assert site.broker.wait_for(lambda: S.RUN_STATE_SUCCEEDED in site.broker.states("minga-j-1-a1"))
    assert site.broker.states("minga-j-1-a1") == [S.RUN_STATE_STARTING, S.RUN_STATE_RUNNING, S.RUN_STATE_SUCCEEDED]
