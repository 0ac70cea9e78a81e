"""Every table the CLI prints fits 80 columns, and never splits a word.

At 80 columns (or piped, where rich assumes 80) tables used to fold mid-word
(`uchil` / `e`, `WEIG` / `HT`). Each table is rendered here with long,
realistic values: a table row must stay one line, every key value (ids,
states, numbers) must show whole, and a shortened text must end in an ellipsis.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from minga.cli import render
from minga.common.accounts import Institution, TokenInfo, User
from minga.common.audit import AuditEntry
from minga.common.domain import GpuPool, Inventory, Role, Site, SiteState
from minga.common.leadership import LeadershipStatus
from minga.common.quotas import Floor, InstitutionQuota, QuotaRow, QuotaView, TreeNode
from minga.common.shares import OPTIONAL_SETTINGS, PartialSettings, ProjectShare, ShareSettings
from minga.common.site_view import SiteView
from minga.common.wire.jobs import job_from_pb
from minga.v1 import common_pb2

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
LONG_REASON = (
    "waiting for 8 x H100 with at least 80 GiB in CL, BR or MX: every matching site is busy, "
    "and the next one frees up when j-9f8e7d6c5b ends (walltime 23h59m)"
)


@pytest.fixture(autouse=True)
def _eighty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)


def _render(capsys: pytest.CaptureFixture[str], draw: Callable[[], None]) -> list[str]:
    draw()
    lines = capsys.readouterr().out.splitlines()
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, "\n".join(lines)
    return lines


def _one_line_per_row(lines: list[str], rows: int, header: str) -> list[str]:
    """The table's lines: a header then exactly `rows` lines (no row wrapped)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    body = lines[start + 1 : start + 1 + rows]
    assert len(body) == rows and all(line.strip() for line in body), "\n".join(lines)
    return body


def _shows_whole(line: str, *values: str) -> None:
    for value in values:
        assert f" {value} " in f" {line} ", f"{value!r} not whole in {line!r}"


def _job(i: int) -> render.JsonDict:
    job = common_pb2.Job(
        id=f"j-9f8e7d6c{i:02d}",
        state=common_pb2.JOB_STATE_PENDING,
        owner="maria-jose",
        institution="universidad-de-chile",
        submitted_at=T0 - 3600,
        reason=LONG_REASON,
    )
    job.spec.name = "llama-finetune-latam-es-pt-v3"
    job.spec.resources.gpus = 8
    job.spec.resources.gpu_models.extend(["H100", "A100-80GB"])
    return render.job_to_dict(job_from_pb(job))


def test_job_list(capsys: pytest.CaptureFixture[str]) -> None:
    body = _one_line_per_row(_render(capsys, lambda: render.jobs_table([_job(i) for i in range(3)], T0)), 3, "ID")
    for i, line in enumerate(body):
        _shows_whole(line, f"j-9f8e7d6c{i:02d}", "PENDING", "1h00m")
        assert " waiting for " in line
        assert line.endswith("…")


def test_job_list_shows_the_site_of_a_running_job(capsys: pytest.CaptureFixture[str]) -> None:
    job = {**_job(0), "state": "RUNNING", "site": "uchile-dcc-cluster-2", "reason": ""}
    (row,) = _one_line_per_row(_render(capsys, lambda: render.jobs_table([job], T0)), 1, "ID")
    _shows_whole(row, "RUNNING", "uchile-dcc-cluster-2")


def test_institutions(capsys: pytest.CaptureFixture[str]) -> None:
    items = [
        render.institution_to_dict(
            Institution(
                slug="unicamp",
                name="Universidade Estadual de Campinas, Instituto de Computação",
                country="BR",
                weight=2.5,
            )
        )
    ]
    body = _one_line_per_row(_render(capsys, lambda: render.institutions_table(items)), 1, "SLUG")
    _shows_whole(body[0], "unicamp", "BR", "2.5")


def test_users(capsys: pytest.CaptureFixture[str]) -> None:
    items = [
        render.user_to_dict(
            User(
                name="maria-jose-fernandez",
                institution="universidad-de-chile",
                role=Role.INSTITUTION_ADMIN,
                created_at=T0,
            )
        )
    ]
    body = _one_line_per_row(_render(capsys, lambda: render.users_table(items)), 1, "NAME")
    _shows_whole(body[0], "maria-jose-fernandez", "institution-admin", "2026-01-01 00:00")


def test_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    items = [
        render.token_to_dict(
            TokenInfo(
                id="3f9a0c1d2e4b",
                owner="maria-jose-fernandez",
                kind="user",
                role=Role.INSTITUTION_ADMIN,
                institution="universidad-de-chile",
                created_at=T0,
                expires_at=T0 + 90 * 86400,
                revoked=False,
                used_at=0.0,
                last_used_at=T0 + 60,
            )
        )
    ]
    body = _one_line_per_row(_render(capsys, lambda: render.tokens_table(items)), 1, "ID")
    _shows_whole(body[0], "3f9a0c1d2e4b", "user", "institution-admin", "2026-04-01", "live")


def test_sites(capsys: pytest.CaptureFixture[str]) -> None:
    site = SiteView(
        Site(
            name="uchile-dcc-cluster-2",
            institution="universidad-de-chile",
            country="CL",
            state=SiteState.CORDONED,
            connected=True,
            inventory=Inventory(gpus=(GpuPool(model="H100", total=8, free=2), GpuPool(model="A100", total=4, free=4))),
            state_reason="cordoned by admin: scheduled maintenance of the cooling, back Monday",
        ),
        gpus_in_use=(("H100", 6),),
    )
    body = _one_line_per_row(_render(capsys, lambda: render.sites_table([render.site_to_dict(site)])), 1, "NAME")
    _shows_whole(body[0], "CL", "H100 6/8,", "A100 0/4", "yes")
    assert "CORDONED" in body[0]


def _quota_view() -> render.JsonDict:
    institution = InstitutionQuota(
        institution="universidad-de-chile",
        country="CL",
        weight=1234.5,
        entitlement_pct=33.33,
        usage_pct=100.0,
        fairshare=0.5,
        guarantee=128,
        held=1024,
        demand=2048,
        fair_share_gpus=411.33,
    )
    row = QuotaRow(
        institution="universidad-de-chile",
        country="CL",
        gpu_model="A100-SXM4-80GB",
        owned=1024,
        in_use=1000,
        held=1024,
        pending=1024,
        guarantee=128,
        borrowed=512,
        lent=256,
    )
    node = TreeNode(
        level="project",
        id="universidad-de-chile/nlp-latam",
        parent="universidad-de-chile",
        weight=1234.5,
        entitlement_pct=33.33,
        usage_pct=100.0,
        fairshare=0.5,
        held=1024,
        demand=2048,
        fair_share_gpus=411.33,
    )
    floor = Floor(share_policy="contribution", base_grant=1234.5, base_grant_fraction=0.25)
    return render.quota_view_to_dict(QuotaView([row], [institution], [node], capacity=1234, floor=floor))


def test_quota_show(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _render(capsys, lambda: render.quotas_table(_quota_view()))
    (inst,) = _one_line_per_row(lines, 1, "INST  ")
    _shows_whole(inst, "CL", "1234", "33.3", "100.0", "0.50", "128", "1024", "2048", "411.3")
    assert inst.startswith("universidad-de-chile ")
    model_head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["INST", "MODEL"])
    _shows_whole(lines[model_head + 1], "1024", "1000", "512", "256")
    assert any(line.startswith("ENT% entitlement") for line in lines)


def test_quota_tree(capsys: pytest.CaptureFixture[str]) -> None:
    (row,) = _one_line_per_row(_render(capsys, lambda: render.tree_table(_quota_view()["tree"])), 1, "ACCOUNT")
    _shows_whole(row, "1234", "33.3", "0.50", "1024", "2048", "411.3")


def test_projects(capsys: pytest.CaptureFixture[str]) -> None:
    items = [
        render.project_to_dict(
            ProjectShare(id="universidad-de-chile/nlp-latam-gpt", institution="universidad-de-chile", weight=3)
        )
    ]
    (row,) = _one_line_per_row(_render(capsys, lambda: render.projects_table(items)), 1, "PROJECT")
    _shows_whole(row, "universidad-de-chile/nlp-latam-gpt", "universidad-de-chile", "3")


def test_policy(capsys: pytest.CaptureFixture[str]) -> None:
    models = ("H100-SXM5-80GB", "A100-SXM4-80GB", "A100-PCIE-40GB", "L40S", "RTX-A6000", "T4", "V100-32GB")
    settings = ShareSettings(
        policy="contribution",
        half_life_seconds=7 * 86400,
        base_grant=1.0,
        preemption_grace_seconds=600,
        model_weights=tuple((model, 1.5) for model in models),
        fair_share_preemption=True,
        preemption_threshold=0.1,
        preemption_cap=0.25,
        preemption_notice_seconds=60,
        base_grant_fraction=0.25,
        reservation_min_age_seconds=600,
    )
    policy = PartialSettings(settings, frozenset(OPTIONAL_SETTINGS))
    lines = _render(capsys, lambda: render.policy_table(render.policy_to_dict(policy)))
    words = {w for line in lines for w in line.split()}
    assert {"H100-SXM5-80GB=1.5,", "V100-32GB=1.5", "(only", "SIGKILL)"} <= words


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        {
            "key": "universidad-de-chile",
            "country": "CL",
            "consumed_gpu_hours": 123456.7,
            "consumed_normalized": 234567.8,
            "contributed_gpu_hours": 345678.9,
            "contributed_normalized": 456789.1,
            "balance_normalized": -222221.3,
            "energy_kwh": 98765.4,
            "emissions_kgco2e": 28740.7,
        }
    ]
    drawn = _render(capsys, lambda: render.usage_table("institution", lines))
    (row,) = _one_line_per_row(drawn, 1, "INSTITUTION")
    _shows_whole(row, "universidad-de-chile", "123456.7", "234567.8", "345678.9", "456789.1", "-222221.3")
    (energy,) = _one_line_per_row(drawn[drawn.index(row) + 1 :], 1, "INSTITUTION")
    _shows_whole(energy, "universidad-de-chile", "CL", "98765.4", "28740.7")


def test_brokers(capsys: pytest.CaptureFixture[str]) -> None:
    answer = LeadershipStatus(
        address="broker-1.minga.example:50051",
        role="leader",
        leading=True,
        leader_address="broker-1.minga.example:50051",
        leading_since=T0,
    )
    items = [
        render.broker_status_to_dict("broker-1.minga.example:50051", answer),
        render.broker_status_to_dict(
            "broker-2.minga.example:50051",
            None,
            "cannot reach broker at broker-2.minga.example:50051: connection refused",
        ),
    ]
    lines = _render(capsys, lambda: render.brokers_table(items))
    body = _one_line_per_row(lines, 2, "ADDRESS")
    _shows_whole(body[0], "leader", "2026-01-01 00:00", "UTC")
    _shows_whole(body[1], "unreachable")
    assert any(line.endswith("connection refused") for line in lines)


def test_admin_audit(capsys: pytest.CaptureFixture[str]) -> None:
    entries = [
        render.audit_to_dict(
            AuditEntry(
                at=T0 + 0.25,
                who="maria-jose-fernandez",
                role="institution-admin",
                method="LendingService/SetLendingPolicyForSite",
                target="uchile-dcc-cluster-2",
                peer="ipv6:[2001:db8::1234:5678]:54321",
                outcome="denied",
                detail="permission denied: role institution-admin may not call SetLendingPolicy for another site",
            )
        )
    ]
    (row,) = _one_line_per_row(_render(capsys, lambda: render.audit_table(entries)), 1, "AT")
    _shows_whole(row, "01-01 00:00:00")
    assert "SetLendingPolicyForSite" in row and row.endswith("…")
