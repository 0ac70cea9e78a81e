"""AdminService: converts, delegates to scheduler.service.admin, converts back.

Every answer is built by the wire layer (minga.common.wire), the same mapping the CLI's
client reads it back with."""

from __future__ import annotations

from collections.abc import Callable

from minga.common.accounts import JoinToken, NewToken, NewUser
from minga.common.domain import SiteState
from minga.common.leadership import LeadershipStatus
from minga.common.shares import Guarantee, InstitutionLimits, NodeWeight, ShareSettings
from minga.common.webhooks import normalize_hosts
from minga.common.wire.accounts import (
    institution_to_pb,
    join_token_to_pb,
    new_token_to_pb,
    new_user_to_pb,
    token_info_to_pb,
    user_to_pb,
    whoami_to_pb,
)
from minga.common.wire.audit import audit_entry_to_pb
from minga.common.wire.carbon import figures_to_pb
from minga.common.wire.enums import role_from_pb
from minga.common.wire.leadership import leadership_to_pb
from minga.common.wire.lending import policy_from_pb, site_lending_to_pb
from minga.common.wire.limits import account_limit_from_pb, account_limit_to_pb
from minga.common.wire.quotas import quota_view_to_pb
from minga.common.wire.shares import (
    guarantee_to_pb,
    limits_to_pb,
    node_weight_to_pb,
    partial_settings_from_pb,
    project_to_pb,
    share_settings_to_pb,
)
from minga.common.wire.sites import site_view_to_pb
from minga.common.wire.usage import usage_report_to_pb
from minga.scheduler.api.interceptor import CallContext
from minga.scheduler.auth import bearer_from_metadata
from minga.scheduler.core import Core
from minga.scheduler.service import admin, carbon, lending, limits, shares, webhooks
from minga.v1 import admin_pb2, admin_pb2_grpc


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, core: Core, broker_status: Callable[[], LeadershipStatus] | None = None) -> None:
        self.core = core
        self._broker_status = broker_status or (lambda: LeadershipStatus("", True, "leader", "", 0.0))

    def BrokerStatus(
        self, request: admin_pb2.BrokerStatusRequest, context: CallContext
    ) -> admin_pb2.BrokerStatusResponse:
        return leadership_to_pb(self._broker_status())

    def AddInstitution(self, request: admin_pb2.AddInstitutionRequest, context: CallContext) -> admin_pb2.Institution:
        i = request.institution
        return institution_to_pb(admin.add_institution(self.core, i.slug, i.name, i.country, i.weight or 1.0))

    def ListInstitutions(
        self, request: admin_pb2.ListInstitutionsRequest, context: CallContext
    ) -> admin_pb2.ListInstitutionsResponse:
        return admin_pb2.ListInstitutionsResponse(
            institutions=[institution_to_pb(i) for i in admin.list_institutions(self.core)]
        )

    def AddUser(self, request: admin_pb2.AddUserRequest, context: CallContext) -> admin_pb2.AddUserResponse:
        user, token, expires_at = admin.add_user(
            self.core, request.name, request.institution, role_from_pb(request.role), request.ttl_seconds
        )
        return new_user_to_pb(NewUser(user, token, expires_at))

    def ListUsers(self, request: admin_pb2.ListUsersRequest, context: CallContext) -> admin_pb2.ListUsersResponse:
        return admin_pb2.ListUsersResponse(users=[user_to_pb(u) for u in admin.list_users(self.core, context.caller)])

    def ListTokens(self, request: admin_pb2.ListTokensRequest, context: CallContext) -> admin_pb2.ListTokensResponse:
        return admin_pb2.ListTokensResponse(
            tokens=[token_info_to_pb(t) for t in admin.list_tokens(self.core, context.caller, request.owner)]
        )

    def CreateSiteToken(
        self, request: admin_pb2.CreateSiteTokenRequest, context: CallContext
    ) -> admin_pb2.CreateSiteTokenResponse:
        token, expires = admin.create_site_token(
            self.core, request.institution, request.site, request.ttl_seconds, request.country
        )
        return join_token_to_pb(JoinToken(request.site, token, expires))

    def ListSites(self, request: admin_pb2.ListSitesRequest, context: CallContext) -> admin_pb2.ListSitesResponse:
        return admin_pb2.ListSitesResponse(sites=[site_view_to_pb(s) for s in admin.list_sites(self.core)])

    def CordonSite(self, request: admin_pb2.SiteRequest, context: CallContext) -> admin_pb2.Site:
        return site_view_to_pb(admin.set_admin_state(self.core, request.name, SiteState.CORDONED))

    def DrainSite(self, request: admin_pb2.SiteRequest, context: CallContext) -> admin_pb2.Site:
        return site_view_to_pb(admin.set_admin_state(self.core, request.name, SiteState.DRAINING))

    def ListAudit(self, request: admin_pb2.ListAuditRequest, context: CallContext) -> admin_pb2.ListAuditResponse:
        entries = admin.list_audit(self.core, context.caller, request.since, request.who, request.limit)
        return admin_pb2.ListAuditResponse(entries=[audit_entry_to_pb(e) for e in entries])

    def RevokeUser(self, request: admin_pb2.RevokeRequest, context: CallContext) -> admin_pb2.RevokeResponse:
        return admin_pb2.RevokeResponse(revoked=admin.revoke_user(self.core, request.name))

    def RevokeSite(self, request: admin_pb2.RevokeRequest, context: CallContext) -> admin_pb2.RevokeResponse:
        return admin_pb2.RevokeResponse(revoked=admin.revoke_site(self.core, request.name))

    def RotateToken(self, request: admin_pb2.RotateTokenRequest, context: CallContext) -> admin_pb2.RotateTokenResponse:
        bearer = bearer_from_metadata(context.invocation_metadata()) or ""
        return new_token_to_pb(NewToken(*admin.rotate_token(self.core, context.caller, bearer)))

    def UncordonSite(self, request: admin_pb2.SiteRequest, context: CallContext) -> admin_pb2.Site:
        return site_view_to_pb(admin.set_admin_state(self.core, request.name, None))

    def ShowQuotas(self, request: admin_pb2.ShowQuotasRequest, context: CallContext) -> admin_pb2.ShowQuotasResponse:
        return quota_view_to_pb(admin.show_quotas(self.core, request.tree, context.caller))

    def WhoAmI(self, request: admin_pb2.WhoAmIRequest, context: CallContext) -> admin_pb2.WhoAmIResponse:
        return whoami_to_pb(admin.whoami(context.caller))

    def AddProject(self, request: admin_pb2.AddProjectRequest, context: CallContext) -> admin_pb2.Project:
        return project_to_pb(shares.add_project(self.core, request.institution, request.name, request.weight))

    def ListProjects(
        self, request: admin_pb2.ListProjectsRequest, context: CallContext
    ) -> admin_pb2.ListProjectsResponse:
        return admin_pb2.ListProjectsResponse(projects=[project_to_pb(p) for p in shares.list_projects(self.core)])

    def SetWeight(self, request: admin_pb2.SetWeightRequest, context: CallContext) -> admin_pb2.SetWeightResponse:
        return node_weight_to_pb(NodeWeight(*shares.set_weight(self.core, request.kind, request.id, request.weight)))

    def GetPolicy(self, request: admin_pb2.GetPolicyRequest, context: CallContext) -> admin_pb2.Policy:
        return self._policy(shares.get_policy(self.core), webhooks.webhook_hosts(self.core))

    def SetPolicy(self, request: admin_pb2.SetPolicyRequest, context: CallContext) -> admin_pb2.Policy:
        update = partial_settings_from_pb(request.policy)
        new_hosts = None
        if request.policy.set_webhook_hosts:  # checked before anything changes
            new_hosts = normalize_hosts(request.policy.webhook_hosts)
        settings = shares.set_policy(self.core, update.settings, set(update.given))
        hosts = (
            webhooks.set_webhook_hosts(self.core, new_hosts)
            if new_hosts is not None
            else webhooks.webhook_hosts(self.core)
        )
        return self._policy(settings, hosts)

    @staticmethod
    def _policy(settings: ShareSettings, hosts: tuple[str, ...]) -> admin_pb2.Policy:
        answer = share_settings_to_pb(settings)
        answer.webhook_hosts.extend(hosts)
        return answer

    def CreateWebhookSecret(
        self, request: admin_pb2.CreateWebhookSecretRequest, context: CallContext
    ) -> admin_pb2.CreateWebhookSecretResponse:
        secret, replaced = webhooks.create_secret(self.core, context.caller)
        return admin_pb2.CreateWebhookSecretResponse(user=context.caller.name, secret=secret, replaced=replaced)

    def SetGuarantee(
        self, request: admin_pb2.SetGuaranteeRequest, context: CallContext
    ) -> admin_pb2.SetGuaranteeResponse:
        shares.set_guarantee(self.core, request.institution, request.gpu_model, request.gpus)
        return guarantee_to_pb(Guarantee(request.institution, request.gpu_model, request.gpus))

    def SetLimits(self, request: admin_pb2.SetLimitsRequest, context: CallContext) -> admin_pb2.SetLimitsResponse:
        borrow, lend = shares.set_limits(self.core, request.institution, request.borrowing_limit, request.lending_limit)
        return limits_to_pb(InstitutionLimits(request.institution, borrow, lend))

    def SetAccountLimits(
        self, request: admin_pb2.SetAccountLimitsRequest, context: CallContext
    ) -> admin_pb2.AccountLimits:
        change = account_limit_from_pb(request.limits)  # absent: unchanged; -1: unlimited
        stored = limits.set_account_limits(
            self.core,
            context.caller,
            change.kind,
            change.key,
            change.max_gpus,
            change.max_pending,
            change.max_walltime_seconds,
        )
        return account_limit_to_pb(stored)

    def ListAccountLimits(
        self, request: admin_pb2.ListAccountLimitsRequest, context: CallContext
    ) -> admin_pb2.ListAccountLimitsResponse:
        found = limits.list_account_limits(self.core, context.caller)
        return admin_pb2.ListAccountLimitsResponse(limits=[account_limit_to_pb(lim) for lim in found])

    def GetCarbon(self, request: admin_pb2.GetCarbonRequest, context: CallContext) -> admin_pb2.CarbonFigures:
        return figures_to_pb(carbon.get_carbon(self.core))

    def SetCarbon(self, request: admin_pb2.SetCarbonRequest, context: CallContext) -> admin_pb2.CarbonFigures:
        figures = carbon.set_carbon(
            self.core,
            context.caller,
            request.kind,
            request.key,
            intensity=request.intensity if request.HasField("intensity") else None,
            pue=request.pue if request.HasField("pue") else None,
            watts=request.watts if request.HasField("watts") else None,
        )
        return figures_to_pb(figures)

    def SetSiteLabels(self, request: admin_pb2.SetSiteLabelsRequest, context: CallContext) -> admin_pb2.Site:
        return site_view_to_pb(admin.set_site_labels(self.core, request.name, dict(request.labels)))

    def SetLendingPolicy(
        self, request: admin_pb2.SetLendingPolicyRequest, context: CallContext
    ) -> admin_pb2.LendingPolicyResponse:
        policy = None if request.clear else policy_from_pb(request.policy)
        return site_lending_to_pb(lending.set_lending_policy(self.core, context.caller, request.site, policy))

    def GetLendingPolicy(
        self, request: admin_pb2.GetLendingPolicyRequest, context: CallContext
    ) -> admin_pb2.LendingPolicyResponse:
        return site_lending_to_pb(lending.get_lending_policy(self.core, request.site))

    def UsageReport(self, request: admin_pb2.UsageReportRequest, context: CallContext) -> admin_pb2.UsageReportResponse:
        return usage_report_to_pb(shares.usage_report(self.core, request.since_seconds, request.by))
