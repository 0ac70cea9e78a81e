"""AdminService: converts, delegates to scheduler.service.admin, converts back.

Domain values travel through the wire layer (minga.common.wire); the answers built here
are the broker's own read models (accounts, quotas, leadership, a site's lending), which
no other side reads or builds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from minga.common.domain import SiteState
from minga.common.lending import LendingPolicy
from minga.common.wire.enums import role_from_pb, role_to_pb
from minga.common.wire.lending import policy_from_pb, policy_to_pb
from minga.common.wire.shares import project_to_pb, share_settings_to_pb, share_update_from_pb
from minga.common.wire.sites import site_to_pb
from minga.scheduler.api.interceptor import CallContext
from minga.scheduler.auth import bearer_from_metadata
from minga.scheduler.core import Core
from minga.scheduler.leader import LeadershipStatus
from minga.scheduler.quota import QuotaView
from minga.scheduler.service import admin, lending, shares
from minga.scheduler.service.lending import SiteLending
from minga.scheduler.store.accounts import Institution, User
from minga.v1 import admin_pb2, admin_pb2_grpc


def _institution_pb(i: Institution) -> admin_pb2.Institution:
    return admin_pb2.Institution(slug=i.slug, name=i.name, country=i.country, weight=i.weight)


def _user_pb(u: User) -> admin_pb2.User:
    return admin_pb2.User(name=u.name, institution=u.institution, role=role_to_pb(u.role), created_at=u.created_at)


def _quotas_pb(view: QuotaView) -> admin_pb2.ShowQuotasResponse:
    return admin_pb2.ShowQuotasResponse(
        rows=[admin_pb2.QuotaRow(**asdict(r)) for r in view.rows],
        tree=[admin_pb2.TreeNode(**asdict(n)) for n in view.tree],
        institutions=[admin_pb2.InstitutionQuota(**asdict(i)) for i in view.institutions],
        capacity=view.capacity,
        share_policy=view.floor.share_policy,
        base_grant=view.floor.base_grant,
        base_grant_fraction=view.floor.base_grant_fraction,
    )


def _site_lending_pb(s: SiteLending) -> admin_pb2.LendingPolicyResponse:
    return admin_pb2.LendingPolicyResponse(
        site=s.site,
        institution=s.institution,
        has_policy=s.policy is not None,
        policy=policy_to_pb(s.policy or LendingPolicy()),
        open_now=s.open_now,
    )


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, core: Core, broker_status: Callable[[], LeadershipStatus] | None = None) -> None:
        self.core = core
        self._broker_status = broker_status or (lambda: LeadershipStatus("", True, "leader", "", 0.0))

    def BrokerStatus(
        self, request: admin_pb2.BrokerStatusRequest, context: CallContext
    ) -> admin_pb2.BrokerStatusResponse:
        return admin_pb2.BrokerStatusResponse(**asdict(self._broker_status()))

    def AddInstitution(self, request: admin_pb2.AddInstitutionRequest, context: CallContext) -> admin_pb2.Institution:
        i = request.institution
        return _institution_pb(admin.add_institution(self.core, i.slug, i.name, i.country, i.weight or 1.0))

    def ListInstitutions(
        self, request: admin_pb2.ListInstitutionsRequest, context: CallContext
    ) -> admin_pb2.ListInstitutionsResponse:
        return admin_pb2.ListInstitutionsResponse(
            institutions=[_institution_pb(i) for i in admin.list_institutions(self.core)]
        )

    def AddUser(self, request: admin_pb2.AddUserRequest, context: CallContext) -> admin_pb2.AddUserResponse:
        user, token, expires_at = admin.add_user(
            self.core, request.name, request.institution, role_from_pb(request.role), request.ttl_seconds
        )
        return admin_pb2.AddUserResponse(user=_user_pb(user), token=token, expires_at=expires_at)

    def ListUsers(self, request: admin_pb2.ListUsersRequest, context: CallContext) -> admin_pb2.ListUsersResponse:
        return admin_pb2.ListUsersResponse(users=[_user_pb(u) for u in admin.list_users(self.core, context.caller)])

    def ListTokens(self, request: admin_pb2.ListTokensRequest, context: CallContext) -> admin_pb2.ListTokensResponse:
        return admin_pb2.ListTokensResponse(
            tokens=[
                admin_pb2.TokenInfo(**{**asdict(t), "role": role_to_pb(t.role)})
                for t in admin.list_tokens(self.core, context.caller, request.owner)
            ]
        )

    def CreateSiteToken(
        self, request: admin_pb2.CreateSiteTokenRequest, context: CallContext
    ) -> admin_pb2.CreateSiteTokenResponse:
        token, expires = admin.create_site_token(
            self.core, request.institution, request.site, request.ttl_seconds, request.country
        )
        return admin_pb2.CreateSiteTokenResponse(site=request.site, token=token, expires_at=expires)

    def ListSites(self, request: admin_pb2.ListSitesRequest, context: CallContext) -> admin_pb2.ListSitesResponse:
        return admin_pb2.ListSitesResponse(sites=[site_to_pb(s, used) for s, used in admin.list_sites(self.core)])

    def CordonSite(self, request: admin_pb2.SiteRequest, context: CallContext) -> admin_pb2.Site:
        return site_to_pb(*admin.set_admin_state(self.core, request.name, SiteState.CORDONED))

    def DrainSite(self, request: admin_pb2.SiteRequest, context: CallContext) -> admin_pb2.Site:
        return site_to_pb(*admin.set_admin_state(self.core, request.name, SiteState.DRAINING))

    def ListAudit(self, request: admin_pb2.ListAuditRequest, context: CallContext) -> admin_pb2.ListAuditResponse:
        entries = admin.list_audit(self.core, context.caller, request.since, request.who, request.limit)
        return admin_pb2.ListAuditResponse(entries=[admin_pb2.AuditEntry(**asdict(e)) for e in entries])

    def RevokeUser(self, request: admin_pb2.RevokeRequest, context: CallContext) -> admin_pb2.RevokeResponse:
        return admin_pb2.RevokeResponse(revoked=admin.revoke_user(self.core, request.name))

    def RevokeSite(self, request: admin_pb2.RevokeRequest, context: CallContext) -> admin_pb2.RevokeResponse:
        return admin_pb2.RevokeResponse(revoked=admin.revoke_site(self.core, request.name))

    def RotateToken(self, request: admin_pb2.RotateTokenRequest, context: CallContext) -> admin_pb2.RotateTokenResponse:
        bearer = bearer_from_metadata(context.invocation_metadata()) or ""
        token, expires_at = admin.rotate_token(self.core, context.caller, bearer)
        return admin_pb2.RotateTokenResponse(token=token, expires_at=expires_at)

    def UncordonSite(self, request: admin_pb2.SiteRequest, context: CallContext) -> admin_pb2.Site:
        return site_to_pb(*admin.set_admin_state(self.core, request.name, None))

    def ShowQuotas(self, request: admin_pb2.ShowQuotasRequest, context: CallContext) -> admin_pb2.ShowQuotasResponse:
        return _quotas_pb(admin.show_quotas(self.core, request.tree))

    def WhoAmI(self, request: admin_pb2.WhoAmIRequest, context: CallContext) -> admin_pb2.WhoAmIResponse:
        me = admin.whoami(context.caller)
        return admin_pb2.WhoAmIResponse(name=me.name, role=role_to_pb(me.role), institution=me.institution)

    def AddProject(self, request: admin_pb2.AddProjectRequest, context: CallContext) -> admin_pb2.Project:
        return project_to_pb(shares.add_project(self.core, request.institution, request.name, request.weight))

    def ListProjects(
        self, request: admin_pb2.ListProjectsRequest, context: CallContext
    ) -> admin_pb2.ListProjectsResponse:
        return admin_pb2.ListProjectsResponse(projects=[project_to_pb(p) for p in shares.list_projects(self.core)])

    def SetWeight(self, request: admin_pb2.SetWeightRequest, context: CallContext) -> admin_pb2.SetWeightResponse:
        kind, key, weight = shares.set_weight(self.core, request.kind, request.id, request.weight)
        return admin_pb2.SetWeightResponse(kind=kind, id=key, weight=weight)

    def GetPolicy(self, request: admin_pb2.GetPolicyRequest, context: CallContext) -> admin_pb2.Policy:
        return share_settings_to_pb(shares.get_policy(self.core))

    def SetPolicy(self, request: admin_pb2.SetPolicyRequest, context: CallContext) -> admin_pb2.Policy:
        return share_settings_to_pb(shares.set_policy(self.core, *share_update_from_pb(request.policy)))

    def SetGuarantee(
        self, request: admin_pb2.SetGuaranteeRequest, context: CallContext
    ) -> admin_pb2.SetGuaranteeResponse:
        shares.set_guarantee(self.core, request.institution, request.gpu_model, request.gpus)
        return admin_pb2.SetGuaranteeResponse(
            institution=request.institution, gpu_model=request.gpu_model, gpus=request.gpus
        )

    def SetLimits(self, request: admin_pb2.SetLimitsRequest, context: CallContext) -> admin_pb2.SetLimitsResponse:
        borrow, lend = shares.set_limits(self.core, request.institution, request.borrowing_limit, request.lending_limit)
        return admin_pb2.SetLimitsResponse(
            institution=request.institution,
            borrowing_limit=-1 if borrow is None else borrow,
            lending_limit=-1 if lend is None else lend,
        )

    def SetSiteLabels(self, request: admin_pb2.SetSiteLabelsRequest, context: CallContext) -> admin_pb2.Site:
        return site_to_pb(*admin.set_site_labels(self.core, request.name, dict(request.labels)))

    def SetLendingPolicy(
        self, request: admin_pb2.SetLendingPolicyRequest, context: CallContext
    ) -> admin_pb2.LendingPolicyResponse:
        policy = None if request.clear else policy_from_pb(request.policy)
        return _site_lending_pb(lending.set_lending_policy(self.core, context.caller, request.site, policy))

    def GetLendingPolicy(
        self, request: admin_pb2.GetLendingPolicyRequest, context: CallContext
    ) -> admin_pb2.LendingPolicyResponse:
        return _site_lending_pb(lending.get_lending_policy(self.core, request.site))

    def UsageReport(self, request: admin_pb2.UsageReportRequest, context: CallContext) -> admin_pb2.UsageReportResponse:
        since, until, lines = shares.usage_report(self.core, request.since_seconds, request.by)
        return admin_pb2.UsageReportResponse(
            since=since,
            until=until,
            by=request.by,
            lines=[
                admin_pb2.UsageReportLine(
                    key=line.key,
                    country=line.country,
                    consumed_gpu_hours=line.consumed_gpu_hours,
                    consumed_normalized=line.consumed_normalized,
                    contributed_gpu_hours=line.contributed_gpu_hours,
                    contributed_normalized=line.contributed_normalized,
                )
                for line in lines
            ],
        )
