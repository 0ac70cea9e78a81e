"""The authorization matrix, through a real broker: every RPC of every service, called
as every role (admin, institution-admin, researcher, site, no token) on a target of the
caller's own institution and on one of another institution.

The expectations below are this test's own statement of the policy (issue 5, "Users
and roles"), written apart from `minga.scheduler.api.authz.POLICY`, so a wrong table fails
here. An RPC of the wire contract missing from either fails too.

Allowed means any answer but PERMISSION_DENIED or UNAUTHENTICATED (the call may still
fail on its merits: a bogus join token, an empty package). Denied means
PERMISSION_DENIED, UNAUTHENTICATED without a token, and NOT_FOUND for another
institution's job (which does not exist for the caller).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as gd
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from minga.scheduler.api.authz import POLICY
from minga.v1 import admin_pb2, common_pb2, job_pb2, site_pb2
from tests.fixtures_broker import Caller, RunningBroker, bearer, build_message, gpu_inventory, start_broker

SERVICES = [d for module in (job_pb2, admin_pb2, site_pb2) for d in module.DESCRIPTOR.services_by_name.values()]
METHODS = {m.name: (f"/{s.full_name}/{m.name}", m) for s in SERVICES for m in s.methods}
ROLES = ("admin", "inst-admin", "researcher", "site", "nobody")
OWN, OTHER = "own", "other"

# -- the policy, stated independently: per RPC, per role, on which institution's targets
# a call is allowed: "both", "own" (its own institution's only) or absent (never).
# "nobody" (no token) is allowed only where listed.
EVERY_USER = {"admin": "both", "inst-admin": "both", "researcher": "both"}
INSTITUTION_STAFF = {"admin": "both", "inst-admin": "own"}
RESEARCHERS = {"admin": "both", "inst-admin": "own", "researcher": "own"}
ADMIN = {"admin": "both"}
EVERYONE_SELF = {"admin": "both", "inst-admin": "both", "researcher": "both", "site": "both"}
EXPECTED: dict[str, dict[str, str]] = {
    "Join": {"nobody": "both", "admin": "both", "inst-admin": "both", "researcher": "both", "site": "both"},
    "Connect": {"site": "both"},
    "FetchPackage": {"site": "both"},
    "FetchPackageStream": {"site": "both"},
    "RenewCertificate": {"site": "both"},
    "SubmitJob": RESEARCHERS,
    "GetJob": RESEARCHERS,
    "ListJobs": RESEARCHERS,
    "CancelJob": RESEARCHERS,
    "GetJobLogs": RESEARCHERS,
    "GetJobArray": RESEARCHERS,
    "CancelJobArray": RESEARCHERS,
    "HasPackage": EVERY_USER,
    "UploadPackage": EVERY_USER,
    "UploadPackageStream": EVERY_USER,
    "GetPackageLimits": EVERY_USER,
    "AddInstitution": ADMIN,
    "ListInstitutions": EVERY_USER,
    "AddUser": INSTITUTION_STAFF,
    "ListUsers": INSTITUTION_STAFF,
    "RevokeUser": INSTITUTION_STAFF,
    "ListTokens": {"admin": "both", "inst-admin": "own", "researcher": "own", "site": "own"},
    "CreateSiteToken": INSTITUTION_STAFF,
    "ListSites": EVERY_USER,
    "CordonSite": INSTITUTION_STAFF,
    "UncordonSite": INSTITUTION_STAFF,
    "DrainSite": INSTITUTION_STAFF,
    "RevokeSite": INSTITUTION_STAFF,
    "SetSiteLabels": INSTITUTION_STAFF,
    "ListAudit": INSTITUTION_STAFF,
    "RotateToken": EVERYONE_SELF,
    "WhoAmI": EVERYONE_SELF,
    "CreateWebhookSecret": EVERY_USER,  # the caller's own; sites submit no jobs
    "ShowQuotas": EVERY_USER,
    "UsageReport": EVERY_USER,
    "AddProject": INSTITUTION_STAFF,
    "ListProjects": EVERY_USER,
    "SetWeight": INSTITUTION_STAFF,  # of a project; country and institution weights: below
    "GetPolicy": EVERY_USER,
    "SetPolicy": ADMIN,
    "SetGuarantee": ADMIN,
    "SetLimits": ADMIN,
    "SetAccountLimits": INSTITUTION_STAFF,  # a project's or its user's (limits per user and per project)
    "ListAccountLimits": EVERY_USER,  # narrowed to what each may see
    "BrokerStatus": EVERYONE_SELF,
    "SetLendingPolicy": INSTITUTION_STAFF,  # by site name (issue 5, lending policies)
    "GetLendingPolicy": EVERY_USER,
    "GetCarbon": EVERY_USER,  # the figures an estimate uses are public (docs/carbon.md)
    "SetCarbon": ADMIN,
}
# RPCs whose request names an institution's resource; the others act on the caller
# itself or its own institution, so "other" is the same call as "own" for them.
TARGETED = {
    "GetJob",
    "CancelJob",
    "GetJobLogs",
    "GetJobArray",
    "CancelJobArray",
    "AddUser",
    "RevokeUser",
    "ListTokens",
    "CreateSiteToken",
    "CordonSite",
    "UncordonSite",
    "DrainSite",
    "RevokeSite",
    "SetSiteLabels",
    "AddProject",
    "SetWeight",
    "SetGuarantee",
    "SetLimits",
    "SetAccountLimits",
    "SetLendingPolicy",
}
JOB_TARGETED = {"GetJob", "CancelJob", "GetJobLogs", "GetJobArray", "CancelJobArray"}


def expect_allowed(rpc: str, role: str, variant: str) -> bool:
    where = EXPECTED[rpc].get(role)
    if where is None:
        return False
    return where == "both" or variant == OWN or rpc not in TARGETED


# -- the world: two institutions, each with its people, a site, a project and a job ------


@dataclass
class Place:
    inst: str
    site: str
    user: str
    project: str
    researcher: Caller
    inst_admin: Caller
    site_token: str
    job: str = ""


@dataclass
class World:
    broker: RunningBroker
    places: dict[str, Place]
    callers: dict[str, str]
    counter: Iterator[int]

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def admin(self) -> Caller:
        return self.broker.admin


def submit(caller: Caller, entrypoint: str = "python train.py") -> str:
    spec = common_pb2.JobSpec(
        entrypoint=entrypoint,
        resources=common_pb2.Resources(gpus=0),
        runtime_env=common_pb2.RuntimeEnv(env={"DATA": "s3://own/data"}),
    )
    return caller.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=caller.md).job.id


def submit_array(caller: Caller) -> str:
    spec = common_pb2.JobSpec(entrypoint="python sweep.py", resources=common_pb2.Resources(gpus=0))
    return caller.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec, array="0-2"), metadata=caller.md).array.id


def add_user(broker: RunningBroker, name: str, inst: str, role: int) -> Caller:
    a = broker.admin
    r = a.admin.AddUser(admin_pb2.AddUserRequest(name=name, institution=inst, role=role), metadata=a.md)
    return broker.caller(r.token)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    broker = start_broker(tmp_path_factory.mktemp("authz"))
    broker.broker.core.cycle.stop()  # nothing is placed: the answers depend on the calls only
    places = {}
    for variant, (inst, country, site, user) in {
        OWN: ("uchile", "CL", "dcc", "ana"),
        OTHER: ("unam", "MX", "cu", "oscar"),
    }.items():
        broker.institution(inst, country)
        researcher = broker.researcher(user, inst)
        inst_admin = add_user(broker, f"{inst}-boss", inst, common_pb2.ROLE_INSTITUTION_ADMIN)
        place = Place(inst, site, user, f"{inst}/default", researcher, inst_admin, broker.join(inst, site))
        place.job = submit(researcher)
        places[variant] = place
    own = places[OWN]
    callers = {
        "admin": broker.admin.token,
        "inst-admin": own.inst_admin.token,
        "researcher": own.researcher.token,
        "site": own.site_token,
        "nobody": "",
    }
    yield World(broker, places, callers, itertools.count())
    broker.close()


# -- one request per RPC, aimed at the variant's institution ---------------------------


def _site_target(w: World, p: Place) -> dict[str, Any]:
    return {"name": p.site}


def _fresh_site(w: World, p: Place) -> dict[str, Any]:
    name = w.fresh("gone")
    w.broker.join(p.inst, name)
    return {"name": name}


def _fresh_user(w: World, p: Place) -> dict[str, Any]:
    name = w.fresh("leaver")
    add_user(w.broker, name, p.inst, common_pb2.ROLE_RESEARCHER)
    return {"name": name}


def _lending(w: World, p: Place) -> dict[str, Any]:
    return {"site": p.site, "name": p.site}


REQUESTS: dict[str, Callable[[World, Place], dict[str, Any]]] = {
    "Join": lambda w, p: {"join_token": "mgj_not-a-real-one"},
    "FetchPackage": lambda w, p: {"digest": "sha256:" + "0" * 64},
    "FetchPackageStream": lambda w, p: {"digest": "sha256:" + "0" * 64},
    "SubmitJob": lambda w, p: {
        "spec": common_pb2.JobSpec(entrypoint="python x.py", resources=common_pb2.Resources(gpus=0))
    },
    "GetJob": lambda w, p: {"job_id": p.job},
    "CancelJob": lambda w, p: {"job_id": submit(p.researcher)},
    "GetJobLogs": lambda w, p: {"job_id": p.job},
    "GetJobArray": lambda w, p: {"job_id": submit_array(p.researcher)},
    "CancelJobArray": lambda w, p: {"job_id": submit_array(p.researcher)},
    "HasPackage": lambda w, p: {"digest": "sha256:" + "1" * 64},
    "UploadPackage": lambda w, p: {"digest": "sha256:" + "2" * 64, "data": b"not it"},
    "UploadPackageStream": lambda w, p: {"digest": "sha256:" + "2" * 64, "size": 6, "data": b"not it"},
    "AddInstitution": lambda w, p: {
        "institution": admin_pb2.Institution(slug=w.fresh("inst"), name="New", country="AR")
    },
    "AddUser": lambda w, p: {"name": w.fresh("newbie"), "institution": p.inst, "role": common_pb2.ROLE_RESEARCHER},
    "RevokeUser": _fresh_user,
    "ListTokens": lambda w, p: {"owner": p.user} if p.inst != "uchile" else {},
    "CreateSiteToken": lambda w, p: {"institution": p.inst, "site": w.fresh("newsite")},
    "CordonSite": _site_target,
    "UncordonSite": _site_target,
    "DrainSite": _site_target,
    "RevokeSite": _fresh_site,
    "SetSiteLabels": lambda w, p: {"name": p.site, "labels": {"rack": "a"}},
    "UsageReport": lambda w, p: {"since_seconds": 3600, "by": "institution"},
    "AddProject": lambda w, p: {"institution": p.inst, "name": w.fresh("proj")},
    "SetWeight": lambda w, p: {"kind": "project", "id": p.project, "weight": 2.0},
    "SetGuarantee": lambda w, p: {"institution": p.inst, "gpu_model": "A100", "gpus": 0},
    "SetLimits": lambda w, p: {"institution": p.inst, "borrowing_limit": -1, "lending_limit": -1},
    "SetAccountLimits": lambda w, p: {
        "limits": admin_pb2.AccountLimits(kind="project", id=p.project, max_gpus=-1, max_pending=-1)
    },
    "SetLendingPolicy": _lending,
    "GetLendingPolicy": _lending,
    "SetCarbon": lambda w, p: {"kind": "country", "key": "PE", "intensity": 250.0},
}


def build(desc: gd.Descriptor, fields: dict[str, Any]) -> Message:
    """The request, with those of `fields` its type has (lending RPCs name a site either way)."""
    return build_message(GetMessageClass(desc), {k: v for k, v in fields.items() if k in desc.fields_by_name})


def call(w: World, rpc: str, role: str, variant: str) -> tuple[grpc.StatusCode, str]:
    """Make one call; its status code and message."""
    path, method = METHODS[rpc]
    place = w.places[variant]
    token = w.callers[role]
    if rpc == "RotateToken" and token:  # it retires the caller's token: use a spare one
        token = spare_token(w, role)
    request = build(method.input_type, REQUESTS.get(rpc, lambda w, p: {})(w, place))
    channel = grpc.insecure_channel(w.broker.address)
    md = bearer(token) if token else None
    raw = request.SerializeToString()
    try:
        if rpc == "Connect":
            hello = site_pb2.AgentMessage(hello=site_pb2.Hello(inventory=gpu_inventory())).SerializeToString()
            stream = channel.stream_stream(path)(iter([hello]), metadata=md, timeout=5)
            next(stream)  # the welcome, or the refusal
            stream.cancel()
        elif method.client_streaming:
            channel.stream_unary(path)(iter([raw]), metadata=md, timeout=5)
        elif method.server_streaming:
            for _ in zip(range(1), channel.unary_stream(path)(raw, metadata=md, timeout=5), strict=False):
                pass
        else:
            channel.unary_unary(path)(raw, metadata=md, timeout=5)
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    finally:
        channel.close()
    return grpc.StatusCode.OK, ""


def spare_token(w: World, role: str) -> str:
    own = w.places[OWN]
    if role == "site":
        return w.broker.join(own.inst, w.fresh("spare"))
    grpc_role = {
        "admin": common_pb2.ROLE_ADMIN,
        "inst-admin": common_pb2.ROLE_INSTITUTION_ADMIN,
        "researcher": common_pb2.ROLE_RESEARCHER,
    }[role]
    return add_user(w.broker, w.fresh("spare"), own.inst, grpc_role).token


DENIALS = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}


def verdict(rpc: str, code: grpc.StatusCode) -> bool:
    """Whether an answer means the call was allowed."""
    if code is grpc.StatusCode.NOT_FOUND and rpc in JOB_TARGETED:
        return False
    return code not in DENIALS


# -- the tests -------------------------------------------------------------------------


def test_every_rpc_has_a_rule_and_an_expectation() -> None:
    assert set(METHODS) <= set(EXPECTED), f"no expectation for {sorted(set(METHODS) - set(EXPECTED))}"
    missing = {path for path, _ in METHODS.values()} - set(POLICY)
    assert not missing, f"RPCs missing from the authorization table: {sorted(missing)}"


def test_every_rpc_as_every_role_on_own_and_other_institutions(world: World) -> None:
    wrong = []
    for rpc, role, variant in itertools.product(sorted(METHODS), ROLES, (OWN, OTHER)):
        code, details = call(world, rpc, role, variant)
        assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), f"{rpc} {role} {variant}: {details}"
        expected = expect_allowed(rpc, role, variant)
        if verdict(rpc, code) != expected:
            wrong.append(
                f"{rpc} as {role} on {variant}: {code.name} ({details[:120]}), "
                f"expected {'allowed' if expected else 'denied'}"
            )
        if not expected and role == "nobody":
            assert code is grpc.StatusCode.UNAUTHENTICATED, f"{rpc} without a token: {code.name}"
    assert not wrong, "\n".join(wrong)


def _code(fn: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    try:
        fn()
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def test_an_unknown_target_reads_like_another_institutions(world: World) -> None:
    """Nobody learns what other institutions have by probing names."""
    boss, ana = world.places[OWN].inst_admin, world.places[OWN].researcher
    other = world.places[OTHER]
    for rpc, theirs, nosuch in [
        ("CordonSite", admin_pb2.SiteRequest(name=other.site), admin_pb2.SiteRequest(name="nosuch")),
        ("RevokeUser", admin_pb2.RevokeRequest(name=other.user), admin_pb2.RevokeRequest(name="nosuch")),
    ]:
        method = getattr(boss.admin, rpc)
        code_theirs, msg_theirs = _code(lambda: method(theirs, metadata=boss.md))
        code_none, msg_none = _code(lambda: method(nosuch, metadata=boss.md))
        assert code_theirs is code_none is grpc.StatusCode.PERMISSION_DENIED
        assert msg_theirs.replace(repr(theirs.name), "X") == msg_none.replace("'nosuch'", "X")
    code_theirs, msg_theirs = _code(lambda: ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=other.job), metadata=ana.md))
    code_none, msg_none = _code(lambda: ana.jobs.GetJob(job_pb2.GetJobRequest(job_id="nosuch"), metadata=ana.md))
    assert code_theirs is code_none is grpc.StatusCode.NOT_FOUND
    assert msg_theirs.replace(other.job, "X") == msg_none.replace("nosuch", "X")
    admin = world.admin()  # an admin may act anywhere, so an unknown name is just unknown
    assert (
        _code(lambda: admin.admin.CordonSite(admin_pb2.SiteRequest(name="nosuch"), metadata=admin.md))[0]
        is grpc.StatusCode.NOT_FOUND
    )


def test_institution_admins_stay_within_their_institution(world: World) -> None:
    boss, own = world.places[OWN].inst_admin, world.places[OWN]

    def add(name: str, inst: str, role: int) -> tuple[grpc.StatusCode, str]:
        request = admin_pb2.AddUserRequest(name=name, institution=inst, role=role)
        return _code(lambda: boss.admin.AddUser(request, metadata=boss.md))

    assert add("deputy", own.inst, common_pb2.ROLE_INSTITUTION_ADMIN)[0] is grpc.StatusCode.OK
    assert add("tyrant", own.inst, common_pb2.ROLE_ADMIN)[0] is grpc.StatusCode.PERMISSION_DENIED
    assert add("tyrant", "", common_pb2.ROLE_ADMIN)[0] is grpc.StatusCode.PERMISSION_DENIED
    assert add("spy", world.places[OTHER].inst, common_pb2.ROLE_RESEARCHER)[0] is grpc.StatusCode.PERMISSION_DENIED
    revoke_admin = _code(lambda: boss.admin.RevokeUser(admin_pb2.RevokeRequest(name="admin"), metadata=boss.md))
    assert revoke_admin[0] is grpc.StatusCode.PERMISSION_DENIED
    for kind, key in [("country", "CL"), ("institution", own.inst)]:  # federation-wide shares
        code, _ = _code(
            lambda: boss.admin.SetWeight(admin_pb2.SetWeightRequest(kind=kind, id=key, weight=3), metadata=boss.md)
        )
        assert code is grpc.StatusCode.PERMISSION_DENIED, kind
    users = boss.admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=boss.md).users
    assert users and {u.institution for u in users} == {own.inst}
    tokens = boss.admin.ListTokens(admin_pb2.ListTokensRequest(), metadata=boss.md).tokens
    assert tokens and {t.institution for t in tokens} == {own.inst}
    assert {
        t.owner for t in boss.admin.ListTokens(admin_pb2.ListTokensRequest(owner=own.site), metadata=boss.md).tokens
    } == {own.site}
    audit = boss.admin.ListAudit(admin_pb2.ListAuditRequest(), metadata=boss.md).entries
    assert audit, "its own institution's calls are in the log"
    theirs = {world.places[OTHER].user, world.places[OTHER].site, "unam-boss", "admin"}
    assert not {e.who for e in audit} & theirs


def test_other_institutions_jobs_show_only_as_aggregates(world: World) -> None:
    """A researcher or institution-admin never sees another institution's entrypoint,
    environment or logs: not in listings, not by id, not in quota or usage views."""
    other = world.places[OTHER]
    secret_entrypoint = "python their-secret-model.py"
    theirs = submit(other.researcher, secret_entrypoint)
    their_array = submit_array(other.researcher)
    for caller in (world.places[OWN].researcher, world.places[OWN].inst_admin):
        grouped = caller.jobs.ListJobs(job_pb2.ListJobsRequest(all=True, group_arrays=True), metadata=caller.md)
        assert {a.institution for a in grouped.arrays} <= {"uchile"} and their_array not in {
            a.id for a in grouped.arrays
        }
        for rpc, request in (("GetJobArray", job_pb2.GetJobRequest), ("CancelJobArray", job_pb2.CancelJobRequest)):
            code, _ = _code(lambda: getattr(caller.jobs, rpc)(request(job_id=their_array), metadata=caller.md))
            assert code is grpc.StatusCode.NOT_FOUND
        listed = caller.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=caller.md).jobs
        assert listed and {j.institution for j in listed} == {"uchile"}
        for rpc in ("GetJob", "CancelJob"):
            code, _ = _code(
                lambda: getattr(caller.jobs, rpc)(getattr(job_pb2, f"{rpc}Request")(job_id=theirs), metadata=caller.md)
            )
            assert code is grpc.StatusCode.NOT_FOUND
        code, _ = _code(
            lambda: list(caller.jobs.GetJobLogs(job_pb2.GetJobLogsRequest(job_id=theirs), metadata=caller.md))
        )
        assert code is grpc.StatusCode.NOT_FOUND
        views = [
            caller.admin.ShowQuotas(admin_pb2.ShowQuotasRequest(tree=True), metadata=caller.md),
            caller.admin.UsageReport(
                admin_pb2.UsageReportRequest(since_seconds=3600, by="project"), metadata=caller.md
            ),
        ]
        for view in views:
            blob = view.SerializeToString()
            assert secret_entrypoint.encode() not in blob and theirs.encode() not in blob
        quota = views[0]
        assert "unam" in {r.institution for r in quota.rows}  # aggregates of theirs are shown
    admin = world.admin()
    assert (
        admin.jobs.GetJob(job_pb2.GetJobRequest(job_id=theirs), metadata=admin.md).spec.entrypoint == secret_entrypoint
    )
    mine = world.places[OWN].inst_admin
    got = mine.jobs.GetJob(job_pb2.GetJobRequest(job_id=world.places[OWN].job), metadata=mine.md)
    assert json.dumps(dict(got.spec.runtime_env.env)) == json.dumps({"DATA": "s3://own/data"})
