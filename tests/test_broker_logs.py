"""The broker's console says what an operator needs, at the level it deserves.

Issue 11 saw 14 alembic INFO lines on a first start, gRPC's C-core TLS lines
(`ssl_transport_security.cc ... WRONG_VERSION_NUMBER`) whenever a client left
out the CA, and a WARNING "site dcc lost" 30 s after a restart for a site whose
agent simply had not reconnected yet.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from minga.common.clock import FakeClock
from minga.scheduler.cycle import SchedulingCycle
from minga.scheduler.leases import SiteLeases
from minga.scheduler.sessions import SessionRegistry
from minga.scheduler.store import Store, migrations
from tests.test_store import NOW, add_institution, join_site

TTL = 30.0


def _migration_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("alembic", "minga.scheduler.store"))]


def test_a_first_start_says_the_schema_in_one_info_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    Store(f"sqlite:///{tmp_path / 'broker.db'}").close()
    lines = _migration_lines(caplog)
    assert [r.getMessage() for r in lines] == [f"store schema created at revision {migrations.head()}"]
    assert lines[0].levelno == logging.INFO

    caplog.clear()
    Store(f"sqlite:///{tmp_path / 'broker.db'}").close()  # up to date: nothing to say
    assert _migration_lines(caplog) == []


def test_the_migration_steps_show_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    Store(f"sqlite:///{tmp_path / 'broker.db'}").close()
    steps = [r.getMessage() for r in caplog.records if r.name.startswith("alembic")]
    assert any(m.startswith("Running upgrade") for m in steps), steps


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'broker.db'}")
    add_institution(s)
    join_site(s, "dcc")
    yield s
    s.close()


def _expire_after_ttl(store: Store, heard: bool) -> None:
    """A broker (re)started at NOW; the site spoke once (`heard`) or never, then fell silent."""
    clock = FakeClock(NOW)
    leases = SiteLeases(clock, TTL)
    if heard:
        leases.connected("dcc")
    clock.advance(TTL + 1)
    SchedulingCycle(store, SessionRegistry(), clock, leases).expire()


def test_a_site_that_has_not_reconnected_since_the_start_is_news_at_info(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="minga.scheduler.cycle")
    _expire_after_ttl(store, heard=False)
    (record,) = [r for r in caplog.records if "dcc" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "has not reconnected" in record.getMessage() and "lost:" not in record.getMessage()


def test_a_site_that_falls_silent_is_lost_at_warning(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="minga.scheduler.cycle")
    _expire_after_ttl(store, heard=True)
    (record,) = [r for r in caplog.records if "dcc" in r.getMessage()]
    assert record.levelno == logging.WARNING and "site dcc lost: no report within the 30 s" in record.getMessage()


# A TLS server, and a client that left out the CA (so it speaks plaintext to it).
PLAINTEXT_CLIENT = textwrap.dedent("""
    import minga.cli.main  # the `minga` entry point, as the console script loads it
    from concurrent import futures
    import grpc
    from minga.common import pki

    ca = pki.create_ca()
    key, cert = pki.issue_server_cert(ca, ["127.0.0.1"])
    server = grpc.server(futures.ThreadPoolExecutor(2))
    creds = grpc.ssl_server_credentials([(pki.key_pem(key), pki.pem(cert))])
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            channel.unary_unary("/minga.v1.AdminService/WhoAmI")(b"", timeout=10)
        except grpc.RpcError as exc:
            print(exc.code().name)
    server.stop(None).wait()
""")


def _plaintext_client_stderr(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"} | env
    done = subprocess.run(
        [sys.executable, "-c", PLAINTEXT_CLIENT], capture_output=True, text=True, env=environ, timeout=120, check=True
    )
    assert done.stdout.strip() == "UNAVAILABLE", done
    return done.stderr


def test_a_client_without_the_ca_leaves_no_c_core_lines() -> None:
    assert "ssl_transport_security" not in _plaintext_client_stderr()


def test_an_operator_can_still_ask_for_grpc_s_own_lines() -> None:
    """The same scenario, with gRPC's INFO asked for: the lines exist, so the test above can fail."""
    assert "ssl_transport_security" in _plaintext_client_stderr(GRPC_VERBOSITY="INFO")
