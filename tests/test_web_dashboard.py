"""The dashboard over real HTTP against a live broker (port 0, a real SQLite file, a scripted
site on the real SiteService stream): sign-in and sessions, role scoping through the one
authorization table, bad input of every kind, the CSV, the log stream, TLS and standbys.
The same pages in a real browser: tests/test_web_browser.py."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from minga.cli.main import app
from minga.common import pki
from minga.common.clock import FakeClock
from minga.common.domain import InvalidArgument
from minga.scheduler.server import Broker, BrokerConfig
from minga.scheduler.web.sessions import COOKIE
from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker

VIEWS = ("/", "/shares", "/sites", "/queue", "/jobs", "/usage", "/audit")


@dataclass
class World:
    broker: RunningBroker
    clock: FakeClock
    site: ScriptedSite
    admin: str
    ana: Caller  # researcher of uchile (CL)
    bruno: Caller  # researcher of usp (BR)
    carla: str  # institution-admin of uchile
    site_token: str
    ana_job: str  # running on dcc, with a secret and a log
    bruno_job: str  # pending: too big for what is free
    url: str

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client, signed in with `token` if given."""
        client = httpx.Client(base_url=self.url, follow_redirects=False, timeout=10)
        if token is not None:
            response = client.post("/login", data={"token": token, "next": "/"})
            assert response.status_code == 303, response.text
        return client


def submit(who: Caller, entrypoint: str, gpus: int, secret: dict[str, str] | None = None) -> str:
    spec = common_pb2.JobSpec(entrypoint=entrypoint, resources=common_pb2.Resources(gpus=gpus), secret_env=secret)
    return who.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=who.md).job.id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    clock = FakeClock(start=1_800_000_000.0)
    broker = start_broker(tmp_path_factory.mktemp("web"), clock=clock, web_listen="127.0.0.1:0")
    broker.institution("uchile", "CL")
    broker.institution("usp", "BR")
    ana = broker.researcher("ana", "uchile")
    bruno = broker.researcher("bruno", "usp")
    carla = broker.user("carla", "uchile", common_pb2.ROLE_INSTITUTION_ADMIN)
    site_token = broker.join("uchile", "dcc", "CL")
    site = ScriptedSite(broker.address, site_token, gpu_inventory("A100", 4), heartbeat_seconds=1)
    ana_job = submit(ana, "python train.py --lr 3e-4", 1, {"WANDB_API_KEY": "s3cr3t-value"})
    run_id = site.next("start").start.run_id
    site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    site.log(run_id, 0, b"epoch 1 loss 0.91\n<script>alert(1)</script>\n")
    bruno_job = submit(bruno, "python big.py", 4)
    broker.full_pass()
    eventually(lambda: b"epoch 1" in b"".join(c.data for c in ana.jobs.GetJobLogs(
        job_pb2.GetJobLogsRequest(job_id=ana_job), metadata=ana.md)), what="ana's log at the broker")  # fmt: skip
    admin = broker.admin_token_file.read_text().strip()
    yield World(broker, clock, site, admin, ana, bruno, carla, site_token, ana_job, bruno_job, broker.broker.web_url)
    site.close()
    broker.close()


def test_signing_in_sets_a_strict_http_only_session_cookie(world: World):
    client = world.client()
    first = client.get("/queue?offset=0")
    assert first.status_code == 303 and first.headers["location"] == "/login?next=/queue%3Foffset%3D0"
    response = client.post("/login", data={"token": world.ana.token, "next": "/queue"})
    assert response.status_code == 303 and response.headers["location"] == "/queue"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain HTTP here; the TLS test checks Secure
    assert world.ana.token not in cookie
    page = client.get("/queue")
    assert page.status_code == 200 and "ana · researcher · uchile" in page.text


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("", "Paste your minga token"),
        ("mgu_not-a-real-token", "unknown or revoked"),
    ],
)
def test_a_bad_token_is_refused_and_no_session_is_made(world: World, token: str, says: str):
    client = world.client()
    response = client.post("/login", data={"token": token})
    assert response.status_code == 401
    assert says in response.text and "set-cookie" not in response.headers
    assert client.get("/").status_code == 303


def test_a_site_token_cannot_sign_in(world: World):
    response = world.client().post("/login", data={"token": world.site_token})
    assert response.status_code == 401 and "sign in with a person" in response.text


def test_an_expired_token_is_refused_and_ends_its_session(world: World):
    token = world.broker.user("dora", "uchile", common_pb2.ROLE_RESEARCHER, ttl=10)
    client = world.client(token)
    assert client.get("/jobs").status_code == 200
    world.clock.advance(11)  # within the sites' 30 s leases: nothing else expires
    assert client.get("/jobs").status_code == 303  # the session ended with its token
    refused = world.client().post("/login", data={"token": token})
    assert refused.status_code == 401 and "expired" in refused.text


def test_a_revoked_token_ends_its_session_at_once(world: World):
    token = world.broker.user("eva", "usp", common_pb2.ROLE_RESEARCHER)
    client = world.client(token)
    assert client.get("/").status_code == 200
    admin = world.broker.admin
    admin.admin.RevokeUser(admin_pb2.RevokeRequest(name="eva"), metadata=admin.md)
    assert client.get("/").status_code == 303


def test_every_view_renders_for_each_role(world: World):
    for token in (world.admin, world.carla, world.ana.token, world.bruno.token):
        client = world.client(token)
        for path in VIEWS:
            response = client.get(path)
            expected = 403 if path == "/audit" and token in (world.ana.token, world.bruno.token) else 200
            assert response.status_code == expected, (path, response.text[-500:])
            assert response.headers["cache-control"] == "no-store"
            assert "default-src 'self'" in response.headers["content-security-policy"]


def test_a_researcher_sees_their_institutions_jobs_and_others_only_in_aggregate(world: World):
    ana = world.client(world.ana.token)
    other = ana.get(f"/jobs/{world.bruno_job}")
    assert other.status_code == 404 and f"no job {world.bruno_job!r}".replace("'", "&#39;") in other.text
    assert ana.get(f"/jobs/{world.bruno_job}/logs/events").status_code == 404
    assert world.bruno_job not in ana.get("/jobs").text
    queue = ana.get("/queue").text
    assert world.bruno_job not in queue
    assert '<th scope="row">usp</th><td>1</td><td>4</td>' in queue  # usp's pending, counted only
    assert "Audit" not in ana.get("/").text.split("</nav>")[0]  # not offered ...
    assert ana.get("/audit").status_code == 403  # ... nor served
    bruno = world.client(world.bruno.token)
    assert world.bruno_job in bruno.get("/queue").text
    assert bruno.get(f"/jobs/{world.ana_job}").status_code == 404


def test_an_institution_admin_sees_its_own_audit_and_an_admin_everything(world: World):
    carla = world.client(world.carla).get("/audit").text
    assert "SubmitJob" in carla and "bruno" not in carla  # ana's submit, not usp's
    admin = world.client(world.admin).get("/audit").text
    assert "bruno" in admin
    assert world.bruno_job in world.client(world.admin).get("/jobs").text


def test_the_job_page_masks_secrets_and_escapes_the_log(world: World):
    page = world.client(world.ana.token).get(f"/jobs/{world.ana_job}").text
    assert "WANDB_API_KEY" in page and "s3cr3t-value" not in page
    assert "epoch 1 loss 0.91" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "RUNNING" in page and "minga-" + world.ana_job in page  # its run


def test_the_queue_shows_the_policy_order_reason_and_estimate(world: World):
    client = world.client(world.bruno.token)

    def row() -> str:
        page = client.get("/queue").text
        return page.split(world.bruno_job, 1)[1].split("</tr>", 1)[0]

    def estimated(text: str) -> bool:
        return "about" in text or "not before" in text or "no start foreseen" in text  # the forecast's answer

    first = row()
    assert "capacity" in first or "reservation" in first  # why it waits
    # The page shows the latest finished forecast and asks for one; the broker's worker computes
    # it off the request, so until then the row says so.
    assert estimated(first) or "no estimate yet" in first
    eventually(lambda: estimated(row()), what="the worker's forecast on the queue page")


def test_the_usage_csv_downloads_with_a_header_and_a_line_per_country(world: World):
    response = world.client(world.admin).get("/usage.csv?by=country&since=1d")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["country", "country", "consumed_gpu_hours"]
    assert {r[0] for r in rows[1:]} <= {"CL", "BR"}


@pytest.mark.parametrize(
    "path",
    [
        "/jobs?state=BOGUS",
        "/jobs?q=" + "x" * 300,
        "/queue?offset=-1",
        "/queue?offset=abc",
        "/usage?since=2y",
        "/usage?by=planet",
        "/usage.csv?since=0",
        "/audit?since=forever",
        "/jobs/%00",
    ],
)
def test_bad_input_gets_a_clear_error_and_the_dashboard_keeps_serving(world: World, path: str):
    client = world.client(world.admin)
    response = client.get(path)
    assert response.status_code in (400, 404), response.text[-300:]
    assert 'role="alert"' in response.text
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"token": "x" * 100_000},  # over the form's cap: refused unread
        b"token=\xff\xfe",  # not UTF-8
        "&".join(f"f{i}=1" for i in range(50)),  # too many fields
    ],
)
def test_an_oversized_or_malformed_sign_in_form_is_refused(world: World, body: object):
    client = world.client()
    form = {"content-type": "application/x-www-form-urlencoded"}
    if isinstance(body, dict):
        response = client.post("/login", data=body)
    else:
        response = client.post("/login", content=body if isinstance(body, bytes) else str(body), headers=form)
    assert response.status_code == 400 and "malformed or over" in response.text
    assert "set-cookie" not in response.headers
    assert world.client(world.ana.token).get("/").status_code == 200


def test_forms_from_another_site_are_refused(world: World):
    client = world.client()
    forged = client.post("/login", data={"token": world.ana.token}, headers={"origin": "http://evil.example"})
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    signed_in = world.client(world.ana.token)
    assert signed_in.post("/logout", data={"csrf": "guess"}).status_code == 403
    assert signed_in.get("/").status_code == 200  # still signed in


def test_signing_out_ends_the_session(world: World):
    client = world.client(world.ana.token)
    page = client.get("/").text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    sid = client.cookies[COOKIE]
    response = client.post("/logout", data={"csrf": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    replay = world.client()
    replay.cookies.set(COOKIE, sid)
    assert replay.get("/").status_code == 303


def test_the_log_stream_sends_the_rest_and_ends_with_the_job(world: World, tmp_path: Path):
    job_id = submit(world.ana, "python short.py", 1)
    run_id = world.site.next("start").start.run_id
    world.site.report(run_id, common_pb2.RUN_STATE_RUNNING)
    world.site.log(run_id, 0, b"line one\n")
    world.site.log(run_id, 9, b"line two\n")
    world.site.report(run_id, common_pb2.RUN_STATE_SUCCEEDED)
    eventually(lambda: world.ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), metadata=world.ana.md).state
               == common_pb2.JOB_STATE_SUCCEEDED, what="the job's end")  # fmt: skip
    client = world.client(world.ana.token)
    with client.stream("GET", f"/jobs/{job_id}/logs/events?run={run_id}&offset=9") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())
    assert "line one" not in body  # the page had it already
    assert f"id: {run_id}:18\nevent: log\ndata: line two\n" in body
    assert "event: end" in body and "SUCCEEDED" in body
    resumed = client.get(f"/jobs/{job_id}/logs/events", headers={"last-event-id": f"{run_id}:18"}).text
    assert "line two" not in resumed and "event: end" in resumed
    assert client.get(f"/jobs/{job_id}/logs/events?offset=x").status_code == 400


def test_static_assets_are_vendored(world: World):
    page = world.client(world.admin).get("/").text
    assert "/static/htmx-2.0.11.min.js" in page and "https://" not in page
    for asset in ("/static/htmx-2.0.11.min.js", "/static/htmx-ext-sse-2.2.4.min.js", "/static/minga.css"):
        assert world.client().get(asset).status_code == 200


def test_a_taken_port_is_a_clear_error(world: World, tmp_path: Path):
    taken = world.url.split("//", 1)[1].rstrip("/")
    with pytest.raises(InvalidArgument, match="--web-listen .*cannot listen there"):
        start_broker(tmp_path, web_listen=taken)


def test_over_tls_the_cookie_is_secure(tmp_path: Path):
    pki_dir = tmp_path / "pki"
    made = pki.init_broker_pki(pki_dir, ["127.0.0.1", "localhost"])
    broker = Broker(
        BrokerConfig(
            listen="127.0.0.1:0",
            db_url=f"sqlite:///{tmp_path / 'broker.db'}",
            admin_token_file=tmp_path / "admin-token",
            pki_dir=pki_dir,
            site_listen="127.0.0.1:0",
            web_listen="127.0.0.1:0",
        )
    )
    broker.start()
    try:
        assert broker.web_url.startswith("https://")
        with httpx.Client(base_url=broker.web_url, verify=str(made.ca_file)) as client:
            token = (tmp_path / "admin-token").read_text().strip()
            response = client.post("/login", data={"token": token})
            assert response.status_code == 303
            assert "secure" in {p.strip().lower() for p in response.headers["set-cookie"].split(";")}
            assert client.get("/sites").status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(broker.web_url.replace("https://", "http://"), timeout=5)
    finally:
        broker.stop(grace=0.5)


def test_a_standby_serves_no_pages_and_names_the_leader(world: World, tmp_path: Path):
    standby = Broker(
        BrokerConfig(
            listen="127.0.0.1:0",
            db_url=world.broker.db_url,
            admin_token_file=world.broker.admin_token_file,
            web_listen="127.0.0.1:0",
        )
    )
    standby.start()
    try:
        assert not standby.leading
        response = httpx.get(standby.web_url + "login", timeout=5)
        assert response.status_code == 200  # the form is static
        page = httpx.post(standby.web_url + "login", data={"token": world.admin}, timeout=5)
        assert page.status_code == 401 and "standby" in page.text and world.broker.address in page.text
    finally:
        standby.stop(grace=0.5)


def test_without_chromium_the_browser_tests_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch):
    from tests.browser import INSTALL_HINT, chromium_paths

    monkeypatch.setenv("MINGA_CHROMIUM", "/nonexistent/chromium")
    assert chromium_paths() is None
    assert "apt-get install -y chromium chromium-driver" in INSTALL_HINT


def test_a_sign_in_flood_from_one_address_is_slowed_and_the_dashboard_keeps_serving(tmp_path: Path):
    broker = start_broker(tmp_path, web_listen="127.0.0.1:0")
    try:
        client = httpx.Client(base_url=broker.broker.web_url, timeout=10)
        codes = [client.post("/login", data={"token": f"mgu_guess-{i}"}).status_code for i in range(100)]
        assert set(codes[:60]) == {401}  # a burst of 30 s worth of attempts is answered
        refused = client.post("/login", data={"token": "mgu_one-more"})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "rate limit" in refused.text
        assert broker.admin.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=broker.admin.md).name == "admin"
    finally:
        broker.close()


@pytest.mark.parametrize("listen", ["8443", "localhost:https", ":8443", "127.0.0.1:99999"])
def test_a_malformed_web_listen_is_refused_in_one_line(tmp_path: Path, listen: str):
    env = {"MINGA_DATA_DIR": str(tmp_path), "MINGA_CONFIG_DIR": str(tmp_path / "config")}
    result = CliRunner().invoke(app, ["broker", "serve", "--listen", "127.0.0.1:0", "--web-listen", listen], env=env)
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert "--web-listen" in line and "HOST:PORT" in line
    assert not (tmp_path / "broker.db").exists()  # refused before anything started
