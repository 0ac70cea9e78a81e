"""A typed client over the broker's gRPC services.

It owns the channel (TLS when a CA is given, 64 MiB messages), puts the bearer
token on every call, and knows the wire-level retry rules the CLI needs:
SubmitJob is retried only with one fixed idempotency key (so a retry can never
create a second job), a followed log stream resumes from the last byte seen, and
with several broker addresses ("h1:p1,h2:p2") a call goes to the next one when a
broker cannot be reached or answers that it is a standby; the one that served
is remembered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from minga.cli.errors import retry_after
from minga.common.channel import broker_addresses, connects, is_standby
from minga.common.domain import ArraySummary, Job, JobSpec, JobState, PackageLimits
from minga.common.wire.enums import job_state_to_pb
from minga.common.wire.jobs import array_from_pb, job_from_pb, package_limits_from_pb, spec_to_pb
from minga.v1 import admin_pb2, admin_pb2_grpc, common_pb2, job_pb2, job_pb2_grpc

if TYPE_CHECKING:
    # The admin calls' values; each call imports its conversions itself, so that a job
    # command does not pay for the admin's modules at start-up.
    from minga.common.accounts import Institution, JoinToken, NewToken, NewUser, TokenInfo, User
    from minga.common.audit import AuditEntry
    from minga.common.carbon import CarbonFigures
    from minga.common.domain import Principal, Role
    from minga.common.leadership import LeadershipStatus
    from minga.common.lending import LendingPolicy, SiteLending
    from minga.common.limits import AccountLimit
    from minga.common.quotas import QuotaView
    from minga.common.shares import Guarantee, InstitutionLimits, NodeWeight, PartialSettings, ProjectShare
    from minga.common.site_view import SiteView
    from minga.common.usage import UsageReport

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
MAX_RETRY_AFTER = 10.0  # seconds: a longer rate-limit wait is reported, not slept through
UPLOAD_CHUNK_BYTES = 1024 * 1024  # one package chunk on the wire, far below any message limit
CONNECT_SECONDS = 5.0  # how long to wait for one broker of several to accept a connection

T = TypeVar("T")


def make_channel(address: str, root_certificates: bytes | None = None) -> grpc.Channel:
    """A channel to `address`: TLS verified against `root_certificates`, else plaintext."""
    if root_certificates is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
        return grpc.secure_channel(address, creds, options=CHANNEL_OPTIONS)
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


@dataclass(frozen=True)
class Submitted:
    """What a submit made (or found, under the same idempotency key): a job or a job array."""

    what: Job | ArraySummary
    created: bool  # False: an earlier submit with the same key made it


def _new_key() -> str:
    import uuid  # lazy: only a submit without --idempotency-key needs one

    return str(uuid.uuid4())


def _state_filter(state: JobState | None) -> common_pb2.JobState:
    return common_pb2.JOB_STATE_UNSPECIFIED if state is None else job_state_to_pb(state)


@dataclass
class Stubs:
    """One broker's channel and stubs."""

    address: str
    channel: grpc.Channel
    jobs: job_pb2_grpc.JobServiceStub
    admin: admin_pb2_grpc.AdminServiceStub

    def reachable(self, timeout: float) -> bool:
        """Whether the broker accepts a connection: READY, not a refused or failed connect."""
        return connects(self.channel, timeout)


class BrokerClient:
    """A connection to the federation's broker, as one caller (the token's owner).

    `address` may list several brokers ("h1:p1,h2:p2") that share one store: calls
    go to the one that leads, found by trying them in turn.
    """

    def __init__(
        self,
        address: str,
        token: str | None = None,
        root_certificates: bytes | None = None,
        *,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.addresses = broker_addresses(address)
        self.timeout = timeout
        self._sleep = sleep
        self._root_certificates = root_certificates
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        self._stubs: dict[int, Stubs] = {}
        self._current = 0  # the broker that served last

    @property
    def address(self) -> str:
        """The broker that served the last call (the first one before any call)."""
        return self.addresses[self._current]

    def _at(self, index: int) -> Stubs:
        if index not in self._stubs:
            channel = make_channel(self.addresses[index], self._root_certificates)
            self._stubs[index] = Stubs(
                self.addresses[index],
                channel,
                job_pb2_grpc.JobServiceStub(channel),
                admin_pb2_grpc.AdminServiceStub(channel),
            )
        return self._stubs[index]

    # -- lifecycle -------------------------------------------------------
    def close(self) -> None:
        for stubs in self._stubs.values():
            stubs.channel.close()
        self._stubs.clear()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[[Stubs], Callable[..., T]], request: object, timeout: float | None = None) -> T:
        """Call the leader: with one address, just call it; with several, try each broker
        that accepts a connection, from the last that served, past standbys."""
        timeout = timeout or self.timeout
        if len(self.addresses) == 1:
            return method(self._at(0))(request, metadata=self._metadata, timeout=timeout)
        refused: grpc.RpcError | None = None
        for index in self._order():
            stubs = self._at(index)
            if not stubs.reachable(min(timeout, CONNECT_SECONDS)):
                continue
            try:
                result = method(stubs)(request, metadata=self._metadata, timeout=timeout)
            except grpc.RpcError as err:
                if not is_standby(err):
                    raise
                refused = err
                continue
            self._current = index
            return result
        if refused is not None:
            raise refused
        # Nobody accepted a connection: let the first broker's own error say why.
        return method(self._at(self._current))(request, metadata=self._metadata, timeout=timeout)

    def _pick(self) -> Stubs:
        """For a stream: the first broker, from the last that served, that accepts a connection."""
        if len(self.addresses) > 1:
            for index in self._order():
                if self._at(index).reachable(CONNECT_SECONDS):
                    self._current = index
                    break
        return self._at(self._current)

    def _order(self) -> list[int]:
        n = len(self.addresses)
        return [(self._current + i) % n for i in range(n)]

    def broker_statuses(self, timeout: float = 5.0) -> list[tuple[str, LeadershipStatus | grpc.RpcError]]:
        """Ask every broker of the list, not only the leader, whether it leads."""
        from minga.common.wire.leadership import leadership_from_pb

        answers: list[tuple[str, LeadershipStatus | grpc.RpcError]] = []
        for index, address in enumerate(self.addresses):
            try:
                answer = self._at(index).admin.BrokerStatus(
                    admin_pb2.BrokerStatusRequest(), metadata=self._metadata, timeout=timeout
                )
                answers.append((address, leadership_from_pb(answer)))
            except grpc.RpcError as err:
                answers.append((address, err))
        return answers

    # -- admin ------------------------------------------------------------
    def whoami(self) -> Principal:
        from minga.common.wire.accounts import whoami_from_pb

        return whoami_from_pb(self._call(lambda s: s.admin.WhoAmI, admin_pb2.WhoAmIRequest()))

    def add_institution(self, slug: str, name: str, country: str, weight: float = 1.0) -> Institution:
        from minga.common.accounts import Institution
        from minga.common.wire.accounts import institution_from_pb, institution_to_pb

        request = admin_pb2.AddInstitutionRequest(
            institution=institution_to_pb(Institution(slug, name, country, weight))
        )
        return institution_from_pb(self._call(lambda s: s.admin.AddInstitution, request))

    def list_institutions(self) -> list[Institution]:
        from minga.common.wire.accounts import institution_from_pb

        answer = self._call(lambda s: s.admin.ListInstitutions, admin_pb2.ListInstitutionsRequest())
        return [institution_from_pb(i) for i in answer.institutions]

    def add_user(self, name: str, institution: str, role: Role, ttl_seconds: int = 0) -> NewUser:
        from minga.common.wire.accounts import new_user_from_pb
        from minga.common.wire.enums import role_to_pb

        request = admin_pb2.AddUserRequest(
            name=name, institution=institution, role=role_to_pb(role), ttl_seconds=ttl_seconds
        )
        return new_user_from_pb(self._call(lambda s: s.admin.AddUser, request))

    def list_tokens(self, owner: str = "") -> list[TokenInfo]:
        from minga.common.wire.accounts import token_info_from_pb

        answer = self._call(lambda s: s.admin.ListTokens, admin_pb2.ListTokensRequest(owner=owner))
        return [token_info_from_pb(t) for t in answer.tokens]

    def list_users(self) -> list[User]:
        from minga.common.wire.accounts import user_from_pb

        return [user_from_pb(u) for u in self._call(lambda s: s.admin.ListUsers, admin_pb2.ListUsersRequest()).users]

    def create_site_token(self, institution: str, site: str, ttl_seconds: int = 0, country: str = "") -> JoinToken:
        from minga.common.wire.accounts import join_token_from_pb

        request = admin_pb2.CreateSiteTokenRequest(
            institution=institution, site=site, ttl_seconds=ttl_seconds, country=country
        )
        return join_token_from_pb(self._call(lambda s: s.admin.CreateSiteToken, request))

    def list_audit(self, since: float, who: str, limit: int) -> list[AuditEntry]:
        from minga.common.wire.audit import audit_entry_from_pb

        request = admin_pb2.ListAuditRequest(since=since, who=who, limit=limit)
        return [audit_entry_from_pb(e) for e in self._call(lambda s: s.admin.ListAudit, request).entries]

    def revoke(self, kind: str, name: str) -> int:
        method = {"user": lambda s: s.admin.RevokeUser, "site": lambda s: s.admin.RevokeSite}[kind]
        return self._call(method, admin_pb2.RevokeRequest(name=name)).revoked

    def rotate_token(self) -> NewToken:
        from minga.common.wire.accounts import new_token_from_pb

        return new_token_from_pb(self._call(lambda s: s.admin.RotateToken, admin_pb2.RotateTokenRequest()))

    def list_sites(self) -> list[SiteView]:
        from minga.common.wire.sites import site_view_from_pb

        answer = self._call(lambda s: s.admin.ListSites, admin_pb2.ListSitesRequest())
        return [site_view_from_pb(s) for s in answer.sites]

    def cordon_site(self, name: str) -> SiteView:
        from minga.common.wire.sites import site_view_from_pb

        return site_view_from_pb(self._call(lambda s: s.admin.CordonSite, admin_pb2.SiteRequest(name=name)))

    def uncordon_site(self, name: str) -> SiteView:
        from minga.common.wire.sites import site_view_from_pb

        return site_view_from_pb(self._call(lambda s: s.admin.UncordonSite, admin_pb2.SiteRequest(name=name)))

    def drain_site(self, name: str) -> SiteView:
        from minga.common.wire.sites import site_view_from_pb

        return site_view_from_pb(self._call(lambda s: s.admin.DrainSite, admin_pb2.SiteRequest(name=name)))

    def set_site_labels(self, name: str, labels: dict[str, str]) -> SiteView:
        from minga.common.wire.sites import site_view_from_pb

        request = admin_pb2.SetSiteLabelsRequest(name=name, labels=labels)
        return site_view_from_pb(self._call(lambda s: s.admin.SetSiteLabels, request))

    def set_lending_policy(self, site: str, policy: LendingPolicy | None) -> SiteLending:
        """Replace the site's lending policy; None removes it."""
        from minga.common.wire.lending import policy_to_pb, site_lending_from_pb

        request = admin_pb2.SetLendingPolicyRequest(
            site=site, policy=None if policy is None else policy_to_pb(policy), clear=policy is None
        )
        return site_lending_from_pb(self._call(lambda s: s.admin.SetLendingPolicy, request))

    def get_lending_policy(self, site: str) -> SiteLending:
        from minga.common.wire.lending import site_lending_from_pb

        request = admin_pb2.GetLendingPolicyRequest(site=site)
        return site_lending_from_pb(self._call(lambda s: s.admin.GetLendingPolicy, request))

    def usage_report(self, since_seconds: float, by: str) -> UsageReport:
        from minga.common.wire.usage import usage_report_from_pb

        request = admin_pb2.UsageReportRequest(since_seconds=since_seconds, by=by)
        return usage_report_from_pb(self._call(lambda s: s.admin.UsageReport, request))

    def show_quotas(self, tree: bool = False) -> QuotaView:
        from minga.common.wire.quotas import quota_view_from_pb

        return quota_view_from_pb(self._call(lambda s: s.admin.ShowQuotas, admin_pb2.ShowQuotasRequest(tree=tree)))

    # -- fair share -------------------------------------------------------
    def add_project(self, institution: str, name: str, weight: float) -> ProjectShare:
        from minga.common.wire.shares import project_from_pb

        request = admin_pb2.AddProjectRequest(institution=institution, name=name, weight=weight)
        return project_from_pb(self._call(lambda s: s.admin.AddProject, request))

    def list_projects(self) -> list[ProjectShare]:
        from minga.common.wire.shares import project_from_pb

        answer = self._call(lambda s: s.admin.ListProjects, admin_pb2.ListProjectsRequest())
        return [project_from_pb(p) for p in answer.projects]

    def set_weight(self, kind: str, key: str, weight: float) -> NodeWeight:
        from minga.common.wire.shares import node_weight_from_pb

        request = admin_pb2.SetWeightRequest(kind=kind, id=key, weight=weight)
        return node_weight_from_pb(self._call(lambda s: s.admin.SetWeight, request))

    def get_policy(self) -> PartialSettings:
        """The fair-share policy: every setting, but those a broker predating them leaves out."""
        from minga.common.wire.shares import partial_settings_from_pb

        return partial_settings_from_pb(self._call(lambda s: s.admin.GetPolicy, admin_pb2.GetPolicyRequest()))

    def set_policy(self, update: PartialSettings) -> PartialSettings:
        """Change the given settings alone; the answer is the whole policy, as `get_policy`'s."""
        from minga.common.wire.shares import partial_settings_from_pb, partial_settings_to_pb

        request = admin_pb2.SetPolicyRequest(policy=partial_settings_to_pb(update))
        return partial_settings_from_pb(self._call(lambda s: s.admin.SetPolicy, request))

    def get_policy_and_hosts(self) -> tuple[PartialSettings, tuple[str, ...]]:
        """The policy and the webhook allow-list (docs/notifications.md)."""
        from minga.common.wire.shares import partial_settings_from_pb

        answer = self._call(lambda s: s.admin.GetPolicy, admin_pb2.GetPolicyRequest())
        return partial_settings_from_pb(answer), tuple(answer.webhook_hosts)

    def set_policy_and_hosts(
        self, update: PartialSettings, webhook_hosts: Sequence[str] | None
    ) -> tuple[PartialSettings, tuple[str, ...]]:
        """As `set_policy`; `webhook_hosts` (None: unchanged) replaces the allow-list."""
        from minga.common.wire.shares import partial_settings_from_pb, partial_settings_to_pb

        policy = partial_settings_to_pb(update)
        if webhook_hosts is not None:
            policy.webhook_hosts.extend(webhook_hosts)
            policy.set_webhook_hosts = True
        answer = self._call(lambda s: s.admin.SetPolicy, admin_pb2.SetPolicyRequest(policy=policy))
        return partial_settings_from_pb(answer), tuple(answer.webhook_hosts)

    def create_webhook_secret(self) -> tuple[str, bool]:
        """A new webhook signing secret for the caller (shown once), and whether one was replaced."""
        answer = self._call(lambda s: s.admin.CreateWebhookSecret, admin_pb2.CreateWebhookSecretRequest())
        return answer.secret, answer.replaced

    def set_guarantee(self, institution: str, gpu_model: str, gpus: int) -> Guarantee:
        from minga.common.wire.shares import guarantee_from_pb

        request = admin_pb2.SetGuaranteeRequest(institution=institution, gpu_model=gpu_model, gpus=gpus)
        return guarantee_from_pb(self._call(lambda s: s.admin.SetGuarantee, request))

    def set_limits(self, institution: str, borrowing: int | None, lending: int | None) -> InstitutionLimits:
        """None: unlimited."""
        from minga.common.wire.shares import limit_to_pb, limits_from_pb

        request = admin_pb2.SetLimitsRequest(
            institution=institution, borrowing_limit=limit_to_pb(borrowing), lending_limit=limit_to_pb(lending)
        )
        return limits_from_pb(self._call(lambda s: s.admin.SetLimits, request))

    def set_account_limits(
        self,
        kind: str,
        key: str,
        max_gpus: int | None = None,
        max_pending: int | None = None,
        max_walltime_seconds: int | None = None,
    ) -> AccountLimit:
        """Change a project's or a user's limits: None leaves one as it is, -1 clears it."""
        from minga.common.wire.limits import account_limit_from_pb, limit_change_to_pb

        request = limit_change_to_pb(kind, key, max_gpus, max_pending, max_walltime_seconds)
        return account_limit_from_pb(self._call(lambda s: s.admin.SetAccountLimits, request))

    def list_account_limits(self) -> list[AccountLimit]:
        from minga.common.wire.limits import account_limit_from_pb

        resp = self._call(lambda s: s.admin.ListAccountLimits, admin_pb2.ListAccountLimitsRequest())
        return [account_limit_from_pb(lim) for lim in resp.limits]

    def get_carbon(self) -> CarbonFigures:
        """The energy and emissions figures in force (docs/carbon.md)."""
        from minga.common.wire.carbon import figures_from_pb

        return figures_from_pb(self._call(lambda s: s.admin.GetCarbon, admin_pb2.GetCarbonRequest()))

    def set_carbon(
        self,
        kind: str,
        key: str,
        intensity: float | None = None,
        pue: float | None = None,
        watts: float | None = None,
    ) -> CarbonFigures:
        """Set a country's or a site's intensity, a site's PUE, or a GPU model's watts (admin)."""
        from minga.common.wire.carbon import figures_from_pb

        request = admin_pb2.SetCarbonRequest(kind=kind, key=key, intensity=intensity, pue=pue, watts=watts)
        return figures_from_pb(self._call(lambda s: s.admin.SetCarbon, request))

    # -- jobs -------------------------------------------------------------
    def submit_job(
        self,
        spec: JobSpec,
        idempotency_key: str | None = None,
        *,
        allow_unknown: bool = False,
        array: str = "",
        attempts: int = 5,
        backoff: float = 0.5,
    ) -> Submitted:
        """Submit, retrying transient failures with ONE idempotency key.

        The broker returns the job of an earlier submit with the same key, so
        however many of these tries reached it, there is exactly one job.
        `allow_unknown` queues a job no site has the model, country or GPUs for.
        `array` ("0-999%4") makes a job array: the key covers the whole array.
        """
        request = job_pb2.SubmitJobRequest(
            spec=spec_to_pb(spec, reveal_secrets=True),  # the broker keeps them; it never shows them
            idempotency_key=idempotency_key or _new_key(),
            allow_unknown=allow_unknown,
            array=array,
        )
        resp = self._retry(lambda: self._call(lambda s: s.jobs.SubmitJob, request), attempts, backoff)
        return Submitted(array_from_pb(resp.array) if resp.HasField("array") else job_from_pb(resp.job), resp.created)

    def _retry(self, call: Callable[[], T], attempts: int, backoff: float) -> T:
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except grpc.RpcError as err:
                wait = retry_after(err) if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else None
                if (
                    attempt == attempts
                    or (err.code() not in RETRYABLE and wait is None)
                    or (wait is not None and wait > MAX_RETRY_AFTER)
                ):
                    raise
                # Over the rate limit: come back when the broker said, not before.
                self._sleep(wait if wait is not None else backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def get_job(self, job_id: str) -> Job:
        return job_from_pb(self._call(lambda s: s.jobs.GetJob, job_pb2.GetJobRequest(job_id=job_id)))

    def list_jobs(self, include_finished: bool = False, state: JobState | None = None) -> list[Job]:
        request = job_pb2.ListJobsRequest(all=include_finished, state=_state_filter(state))
        return [job_from_pb(j) for j in self._call(lambda s: s.jobs.ListJobs, request).jobs]

    def list_jobs_and_arrays(
        self, include_finished: bool = False, state: JobState | None = None
    ) -> tuple[list[Job], list[ArraySummary]]:
        """Plain jobs, and each job array as one summary instead of its tasks."""
        request = job_pb2.ListJobsRequest(all=include_finished, state=_state_filter(state), group_arrays=True)
        resp = self._call(lambda s: s.jobs.ListJobs, request)
        return [job_from_pb(j) for j in resp.jobs], [array_from_pb(a) for a in resp.arrays]

    def cancel_job(self, job_id: str) -> Job:
        return job_from_pb(self._call(lambda s: s.jobs.CancelJob, job_pb2.CancelJobRequest(job_id=job_id)))

    def get_job_or_array(self, job_id: str) -> Job | ArraySummary:
        """A job or task (`j-abc_17`), else the job array of that id (`j-abc`)."""
        return self._job_or_array(
            job_id, lambda s: s.jobs.GetJob, lambda s: s.jobs.GetJobArray, job_pb2.GetJobRequest(job_id=job_id)
        )

    def cancel_job_or_array(self, job_id: str) -> Job | ArraySummary:
        """Cancel a job or task, else every task of the job array of that id."""
        return self.cancel_with_dependents(job_id, with_dependents=False)[0]

    def cancel_with_dependents(self, job_id: str, with_dependents: bool = True) -> tuple[Job | ArraySummary, list[str]]:
        """Cancel a job, task or array, and (`with_dependents`) the jobs waiting for it,
        transitively; the ids of those dependents cancelled."""
        dependents: list[str] = []

        def keep(pb: Any) -> Any:
            dependents.extend(pb.cancelled_dependents)
            return pb

        request = job_pb2.CancelJobRequest(job_id=job_id, with_dependents=with_dependents)
        found = self._job_or_array(
            job_id, lambda s: s.jobs.CancelJob, lambda s: s.jobs.CancelJobArray, request, keep=keep
        )
        return found, dependents

    def _job_or_array(
        self, job_id: str, as_job: Any, as_array: Any, request: Any, keep: Any = lambda pb: pb
    ) -> Job | ArraySummary:
        """No such job: the array of that id; a broker without arrays: the job's NOT_FOUND."""
        try:
            return job_from_pb(keep(self._call(as_job, request)))
        except grpc.RpcError as not_a_job:
            if not_a_job.code() != grpc.StatusCode.NOT_FOUND:
                raise
            try:
                return array_from_pb(keep(self._call(as_array, request)))
            except grpc.RpcError as err:
                if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
                    raise not_a_job from None
                raise

    def job_logs(
        self, job_id: str, follow: bool = False, offset: int = 0, *, reconnects: int = 5, backoff: float = 0.5
    ) -> Iterator[bytes]:
        """The log of the job's current or last run, in pieces as they come.

        With `follow` the stream lasts until the job ends; if the connection
        drops it is reopened at the byte after the last one received, so no
        byte is shown twice or skipped.
        """
        failures = 0
        while True:
            request = job_pb2.GetJobLogsRequest(job_id=job_id, follow=follow, offset=offset)
            stream: Iterable[common_pb2.LogChunk] = self._pick().jobs.GetJobLogs(
                request, metadata=self._metadata, timeout=None if follow else self.timeout
            )
            try:
                for chunk in stream:
                    failures = 0
                    offset = chunk.offset + len(chunk.data)
                    yield chunk.data
                return
            except grpc.RpcError as err:
                failures += 1
                standby = is_standby(err) and len(self.addresses) > 1
                if standby:  # try the next broker of the list
                    self._current = (self._current + 1) % len(self.addresses)
                if not (follow or standby) or err.code() not in RETRYABLE or failures > reconnects:
                    raise
                self._sleep(backoff * 2 ** (failures - 1))
            finally:
                cancel = getattr(stream, "cancel", None)
                if cancel is not None:
                    cancel()

    # -- packages ---------------------------------------------------------
    def has_package(self, digest: str) -> bool:
        return self._call(lambda s: s.jobs.HasPackage, job_pb2.HasPackageRequest(digest=digest)).present

    def package_limits(self) -> PackageLimits | None:
        """The broker's package limit and chunk size; None from a broker too old to say."""
        try:
            return package_limits_from_pb(
                self._call(lambda s: s.jobs.GetPackageLimits, job_pb2.GetPackageLimitsRequest())
            )
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise

    def upload_package(self, digest: str, data: bytes, chunk_bytes: int = UPLOAD_CHUNK_BYTES) -> str:
        """Send a package as a stream of chunks, so its size is bounded by the broker's
        package limit rather than by one gRPC message."""

        def send(stubs: Stubs) -> Callable[..., job_pb2.UploadPackageResponse]:
            # A fresh chunk iterator per try: a call that went to a standby consumed nothing useful.
            return lambda _request, **kw: stubs.jobs.UploadPackageStream(
                package_chunks(digest, data, chunk_bytes), **kw
            )

        return self._call(send, None, timeout=max(self.timeout, 300.0)).digest

    def ensure_package(self, digest: str, data: bytes) -> bool:
        """Upload unless the broker already holds `digest`; True when bytes were sent."""
        if self.has_package(digest):
            return False
        self.upload_package(digest, data)
        return True


def package_chunks(
    digest: str, data: bytes, chunk_bytes: int = UPLOAD_CHUNK_BYTES
) -> Iterator[common_pb2.PackageChunk]:
    """`data` as upload chunks: the digest and total size ride on the first."""
    yield common_pb2.PackageChunk(digest=digest, size=len(data), data=data[:chunk_bytes])
    for start in range(chunk_bytes, len(data), chunk_bytes):
        yield common_pb2.PackageChunk(data=data[start : start + chunk_bytes])
