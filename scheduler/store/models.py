"""SQLModel tables. Only the store package imports this module."""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary, Table, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class InstitutionRow(SQLModel, table=True):
    __tablename__ = "institutions"
    slug: str = Field(primary_key=True)
    name: str
    country: str
    weight: float = 1.0
    created_at: float = 0.0
    borrowing_limit: int | None = None  # GPUs beyond its guarantee; None: unlimited
    lending_limit: int | None = None  # GPUs of its own it may lend; None: unlimited


class ProjectRow(SQLModel, table=True):
    __tablename__ = "projects"
    id: str = Field(primary_key=True)  # "<institution>/<name>"
    institution: str = Field(index=True)
    name: str
    weight: float = 1.0
    created_at: float = 0.0


class CountryRow(SQLModel, table=True):
    """An explicit country weight; without a row, a country weighs its institutions' sum."""

    __tablename__ = "countries"
    code: str = Field(primary_key=True)
    weight: float


class GuaranteeRow(SQLModel, table=True):
    """An explicit per-model guarantee (for institutions without sites, or to override)."""

    __tablename__ = "guarantees"
    institution: str = Field(primary_key=True)
    gpu_model: str = Field(primary_key=True)
    gpus: int


class UsageRow(SQLModel, table=True):
    """A project's decayed normalized GPU-seconds, as of `as_of` (updated incrementally)."""

    __tablename__ = "usage"
    project: str = Field(primary_key=True)
    value: float = 0.0
    as_of: float = 0.0


class ContributionRow(SQLModel, table=True):
    """An institution's decayed normalized GPU-seconds made available by its sites."""

    __tablename__ = "contributions"
    institution: str = Field(primary_key=True)
    value: float = 0.0
    as_of: float = 0.0


class SiteUptimeRow(SQLModel, table=True):
    """A contiguous period in which a site served the federation with a fixed capacity;
    what the reciprocity report counts as contributed."""

    __tablename__ = "site_uptime"
    id: int | None = Field(default=None, primary_key=True)
    site: str = Field(index=True)
    institution: str = Field(index=True)
    country: str
    start: float = Field(index=True)
    end: float = Field(index=True)
    gpus: int  # raw GPUs
    normalized_gpus: float  # GPUs times their model weights


class UserUsageRow(SQLModel, table=True):
    """A user leaf's decayed normalized GPU-seconds, as `UsageRow` per project (revision
    0012_user_shares); `user` is '<institution>/<project>/<user name>'."""

    __tablename__ = "user_usage"
    user: str = Field(primary_key=True)
    value: float = 0.0
    as_of: float = 0.0


class UserWeightRow(SQLModel, table=True):
    """A user leaf's weight among its project's users, as an admin set it (default 1: no
    row). Revision 0012_user_shares; `user` is '<institution>/<project>/<user name>'."""

    __tablename__ = "user_weights"
    user: str = Field(primary_key=True)
    weight: float = 1.0


class UserRow(SQLModel, table=True):
    __tablename__ = "users"
    name: str = Field(primary_key=True)
    institution: str = Field(default="", index=True)
    role: str
    created_at: float = 0.0


class TokenRow(SQLModel, table=True):
    """A bearer credential, kept only as a hash. kind: user, site or join."""

    __tablename__ = "tokens"
    hash: str = Field(primary_key=True)
    kind: str = Field(index=True)
    subject: str = Field(index=True)  # user name, or site name for site and join tokens
    role: str = ""
    institution: str = ""
    country: str = ""
    expires_at: float = 0.0  # 0: never
    used_at: float = 0.0
    revoked: bool = False
    created_at: float = 0.0
    # Added by revision 0004: when it last authenticated a call, to within an hour (0: never).
    last_used_at: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})


class SiteRow(SQLModel, table=True):
    __tablename__ = "sites"
    name: str = Field(primary_key=True)
    institution: str = Field(index=True)
    country: str
    state: str = "READY"  # health: READY, DEGRADED or LOST
    connected: bool = False
    inventory_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    last_seen: float = 0.0
    joined_at: float = 0.0
    labels_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    contributed_until: float = 0.0  # contribution is charged up to here
    # Added by revision 0002 (columns are appended, so they come last):
    admin_state: str = Field(default="", sa_column_kwargs={"server_default": ""})  # "", CORDONED or DRAINING
    health_message: str = Field(default="", sa_column_kwargs={"server_default": ""})  # why DEGRADED or LOST


class JobRow(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idem"),)
    id: str = Field(primary_key=True)
    owner: str = Field(index=True)
    institution: str = Field(index=True)
    spec_json: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(index=True)
    attempts: int = 0
    reason: str = ""
    site: str = ""
    country: str = ""
    run_id: str = ""
    gpu_model: str = ""
    project: str = Field(default="", index=True)
    submitted_at: float = Field(default=0.0, index=True)
    started_at: float = 0.0
    finished_at: float = 0.0
    updated_at: float = 0.0
    idempotency_key: str | None = Field(default=None)
    # Added by revision 0002:
    failures: int = Field(
        default=0, sa_column_kwargs={"server_default": "0"}
    )  # the user's failed runs; see max_attempts
    not_before: float = Field(
        default=0.0, sa_column_kwargs={"server_default": "0"}
    )  # requeue backoff: not placed before
    # Added by revision 0006: the secret env values (JSON), apart from spec_json so that
    # nothing decoding a displayed spec can see them; read only to start a run.
    secret_env_json: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # Added by revision 0007: the job's last preemption (domain.JobPreemption); 0: never.
    preempted_at: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    preempted_kind: str = Field(default="", sa_column_kwargs={"server_default": ""})
    preempted_for: str = Field(default="", sa_column_kwargs={"server_default": ""})  # the beneficiary
    preempted_reason: str = Field(default="", sa_column_kwargs={"server_default": ""})
    # Added by revision 0008_infra: requeues the infrastructure caused (scheduler.requeue_rules).
    infra_requeues: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Added by revision 0009_arrays: the job array it is a task of ("": none), its index
    # there, and the array's running cap (%K; 0: none).
    array_id: str = Field(default="", index=True, sa_column_kwargs={"server_default": ""})
    array_index: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    array_limit: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Added by revision 0010_dependencies: conditions of spec.after not met yet; a PENDING
    # job with any is held out of the scheduling queue (scheduler/dependencies.py).
    after_unmet: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class DependencyRow(SQLModel, table=True):
    """One condition of a job's spec.after (added by 0010_dependencies): `job_id` waits
    for `depends_on` (a job or a job array) to meet `condition` (ok, any, failed). Looked
    up by `depends_on` when a job ends, so resolving costs what ended, not the queue."""

    __tablename__ = "job_dependencies"
    job_id: str = Field(primary_key=True)
    depends_on: str = Field(primary_key=True, index=True)
    condition: str


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    id: str = Field(primary_key=True)
    job_id: str = Field(index=True)
    site: str = Field(index=True)
    epoch: int
    gpu_model: str = ""
    gpus: int = 0
    cpus: float = 0.0
    state: str = "STARTING"
    live: bool = Field(default=True, index=True)  # holds GPUs on its site
    message: str = ""
    created_at: float = 0.0
    ended_at: float = 0.0
    institution: str = ""
    project: str = ""
    preemptible: bool = True
    charged_until: float = 0.0  # usage is charged up to here (0: not running yet)
    running_since: float = 0.0  # first reported RUNNING (0: never ran)
    walltime_seconds: int = 0  # its job's limit, for backfill estimates
    # Added by revision 0008_infra: when its site first reported it (0: never, so a start
    # lost in transit may be resent under the same id; otherwise never).
    reported_at: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    # Added by revision 0012_user_shares: its job's owner, the user leaf charged (runs from before: "").
    owner: str = Field(default="", sa_column_kwargs={"server_default": ""})


class LogRow(SQLModel, table=True):
    __tablename__ = "log_chunks"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    offset: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class PackageRow(SQLModel, table=True):
    __tablename__ = "packages"
    digest: str = Field(primary_key=True)
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: float = 0.0


class MetaRow(SQLModel, table=True):
    """Broker-wide facts, e.g. whether the bootstrap admin exists."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str = ""


class AuditRow(SQLModel, table=True):
    """One state-changing call: who (the authenticated identity), what, when, from
    where, and how it ended. Appended, never updated; no secret is ever stored."""

    __tablename__ = "audit"
    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    who: str = Field(index=True)  # user or site name; "" when unauthenticated
    role: str = ""
    method: str  # e.g. "AdminService/AddUser"
    target: str = ""  # what it acted on: a job id, an institution...
    peer: str = ""  # the caller's address, as gRPC saw it
    outcome: str  # "OK" or the status code's name
    detail: str = ""  # the refusal's message, cut short
    # Added by revision 0007: the institution a line is about when its caller is not one of
    # that institution's users or sites (the scheduler's preemptions); "" for calls.
    institution: str = Field(default="", sa_column_kwargs={"server_default": ""})


class LendingRow(SQLModel, table=True):
    """A site owner's lending policy (`minga.common.lending.LendingPolicy` as JSON); no row:
    the site lends to anyone, at any time, and takes any environment. Added by 0005."""

    __tablename__ = "site_lending"
    site: str = Field(primary_key=True)
    policy_json: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: float = 0.0
    updated_by: str = ""


class WebhookSecretRow(SQLModel, table=True):
    """A user's webhook signing secret, Fernet-encrypted with a key derived from the broker's
    token key (store.webhooks). Added by 0011_webhooks."""

    __tablename__ = "webhook_secrets"
    user: str = Field(primary_key=True)
    secret_enc: str = Field(sa_column=Column(Text, nullable=False))
    created_at: float = 0.0


class WebhookDeliveryRow(SQLModel, table=True):
    """One job event to post (the durable outbox), written in the transaction of the job's
    state change; state: PENDING, DELIVERED, FAILED or REFUSED. Added by 0011_webhooks."""

    __tablename__ = "webhook_deliveries"
    id: str = Field(primary_key=True)
    job_id: str = Field(index=True)
    owner: str
    event: str
    url: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    attempts: int = 0
    next_at: float = Field(default=0.0, index=True)
    state: str = Field(default="PENDING", index=True)
    created_at: float = 0.0
    last_error: str = ""


class AccountLimitRow(SQLModel, table=True):
    """Limits of one project or one user within a project (`minga.common.limits`);
    a NULL limit is unlimited, and an account with none left has no row. Added by
    0013_account_limits."""

    __tablename__ = "account_limits"
    kind: str = Field(primary_key=True)  # "project" or "user"
    key: str = Field(primary_key=True)  # "inst/project" or "inst/project/user"
    max_gpus: int | None = None
    max_pending: int | None = None
    max_walltime_seconds: int | None = None
    updated_at: float = 0.0
    updated_by: str = ""


class CarbonFigureRow(SQLModel, table=True):
    """A figure an admin set (`minga.common.carbon`): kind "country" (gCO2e/kWh by ISO code),
    "site" (a site's own gCO2e/kWh), "site_pue" (a site's PUE) or "gpu" (watts by model).
    Added by 0014_carbon."""

    __tablename__ = "carbon_figures"
    kind: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value: float = 0.0
    set_at: float = 0.0
    set_by: str = ""


class RunEnergyRow(SQLModel, table=True):
    """An ended run's energy and emissions estimate, with the figures it used. Added by
    0014_carbon; `seq` (0015_energy_seq) numbers the rows in the order they were written, so
    the metrics add only the rows written since their last scrape (store/carbon.py)."""

    __tablename__ = "run_energy"
    __table_args__ = {"sqlite_autoincrement": True}  # a seq is never reused
    run_id: str = Field(unique=True, index=True)
    country: str = ""
    institution: str = ""
    project: str = ""
    ended_at: float = 0.0
    kwh: float = 0.0
    kgco2e: float = 0.0
    intensity: float = 0.0
    watts: float = 0.0
    pue: float = 0.0
    intensity_source: str = ""
    seq: int | None = Field(default=None, primary_key=True)


def table_of(model: type[SQLModel]) -> Table:
    """The model's Core table, for bulk statements that bypass the ORM."""
    table: Table = model.__table__  # type: ignore[attr-defined]  # set by the mapping; SQLModel does not declare it
    return table
