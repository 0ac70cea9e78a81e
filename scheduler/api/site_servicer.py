"""SiteService: the join exchange and each site's long-lived session.

A session is two halves: a reader thread applies what the agent reports, and the
response generator drains the session's outbox, so a command committed by the
cycle reaches the agent at once rather than at its next heartbeat. The drain
blocks on the outbox without polling: the end of the call closes the session.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import grpc

from minga.common.domain import InvalidArgument
from minga.common.site_messages import Command, RunReport
from minga.common.wire.runs import command_to_pb, run_report_from_pb
from minga.common.wire.sites import inventory_from_pb
from minga.scheduler.api.interceptor import CallContext, status_for
from minga.scheduler.core import Core
from minga.scheduler.service import packages, sites
from minga.scheduler.sessions import SiteSession
from minga.v1 import common_pb2, site_pb2, site_pb2_grpc

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 5.0


class SiteServicer(site_pb2_grpc.SiteServiceServicer):
    def __init__(self, core: Core) -> None:
        self.core = core
        self.reports = sites.SiteReports(core)  # reports of all this port's streams, batched

    def Join(self, request: site_pb2.JoinRequest, context: CallContext) -> site_pb2.JoinResponse:
        joined = sites.join(self.core, request.join_token, request.csr)
        grant = joined.grant
        return site_pb2.JoinResponse(
            site=grant.site,
            institution=grant.institution,
            country=grant.country,
            site_token=joined.site_token,
            certificate=joined.certificate,
            ca_certificate=joined.ca_certificate,
            site_endpoint=joined.site_endpoint,
        )

    def RenewCertificate(
        self, request: site_pb2.RenewCertificateRequest, context: CallContext
    ) -> site_pb2.RenewCertificateResponse:
        return site_pb2.RenewCertificateResponse(
            certificate=sites.renew_certificate(self.core, context.caller, request.csr)
        )

    def FetchPackage(
        self, request: site_pb2.FetchPackageRequest, context: CallContext
    ) -> site_pb2.FetchPackageResponse:
        data = sites.fetch_package(self.core, context.caller, request.digest)
        return site_pb2.FetchPackageResponse(digest=request.digest, data=data)

    def FetchPackageStream(
        self, request: site_pb2.FetchPackageRequest, context: CallContext
    ) -> Iterator[common_pb2.PackageChunk]:
        data = sites.fetch_package(self.core, context.caller, request.digest)
        for digest, size, chunk in packages.package_chunks(data, request.digest):
            yield common_pb2.PackageChunk(digest=digest, size=size, data=chunk)

    def Connect(
        self, request_iterator: Iterator[site_pb2.AgentMessage], context: CallContext
    ) -> Iterator[site_pb2.BrokerMessage]:
        site = context.caller.site
        try:
            first = next(request_iterator, None)
        except grpc.RpcError:
            return  # the agent went away before its Hello
        if first is None or first.WhichOneof("body") != "hello":
            raise InvalidArgument("the first message on a site stream must be hello")
        hello = first.hello
        reports = [run_report_from_pb(r) for r in hello.runs]
        ray_down = (hello.health.message or "unreachable") if hello.health.ray_down else None
        inventory = inventory_from_pb(hello.inventory)
        session = self.core.sessions.open(site, inventory)
        self.reports.wait_site(site)  # the stream this one replaces: its reports go first
        failure: list[BaseException] = []
        try:
            for command in sites.site_connected(self.core, site, inventory, reports, ray_down):
                session.send(command)
            reader = threading.Thread(
                target=self._read,
                args=(site, session, request_iterator, failure),
                name=f"site-reader-{site}",
                daemon=True,
            )
            reader.start()
            log.info("site %s connected", site)
            # At least three heartbeats per lease TTL, so one lost beat never costs a lease.
            beat = min(HEARTBEAT_SECONDS, self.core.leases.ttl_seconds / 3)
            yield site_pb2.BrokerMessage(welcome=site_pb2.Welcome(site=site, heartbeat_seconds=beat))
            if not context.add_callback(session.close):  # the call already ended
                session.close()
            yield from self._drain(session)
        finally:
            if self.core.sessions.close(session):
                sites.site_disconnected(self.core, site)
                log.info("site %s disconnected", site)
        if failure:
            code, message = status_for(failure[0])
            context.abort(code, message)

    @staticmethod
    def _drain(session: SiteSession) -> Iterator[site_pb2.BrokerMessage]:
        """The session's commands until it closes (its call ended, or it was replaced)."""
        while (command := session.outbox.get()) is not None:
            yield command_to_pb(command)

    def _read(
        self, site: str, session: SiteSession, messages: Iterator[site_pb2.AgentMessage], failure: list[BaseException]
    ) -> None:
        """Apply what the agent sends, in order. A run report is queued (the reader reads
        on while it commits, in a batch with other streams' reports); anything else waits
        until this stream's queued reports are applied. The first failure ends the session."""
        pending = 0  # the ticket of this stream's newest queued report

        def done(outcome: list[Command] | BaseException) -> None:
            if isinstance(outcome, BaseException):
                if not failure:
                    failure.append(outcome)
                session.close()
                return
            for command in outcome:
                session.send(command)

        try:
            for message in messages:
                if failure:
                    return
                if not sites.site_alive(self.core, site):
                    log.warning("site %s spoke after its lease expired; ending its session", site)
                    return
                if message.WhichOneof("body") == "run":
                    pending = self.reports.report_async(
                        site, self._run_report(message), done, skip=lambda: bool(failure)
                    )
                    continue
                if pending and message.WhichOneof("body") != "heartbeat":
                    self.reports.wait(pending)
                    if failure:
                        return
                for command in self._handle(session, message):
                    session.send(command)
        except grpc.RpcError:
            pass  # the agent went away; the finally in Connect records it
        except Exception as exc:  # noqa: BLE001 - reported to the agent as a status
            failure.append(exc)
        finally:
            if pending:
                self.reports.wait(pending)  # their commands go out before the stream ends
            session.close()

    @staticmethod
    def _run_report(message: site_pb2.AgentMessage) -> RunReport:
        try:
            return run_report_from_pb(message.run)
        except InvalidArgument as exc:
            raise InvalidArgument(f"run report for {message.run.run_id[:100]!r}: {exc}") from exc

    def _handle(self, session: SiteSession, message: site_pb2.AgentMessage) -> list[Command]:
        site, kind = session.site, message.WhichOneof("body")
        if kind == "run":
            return self.reports.report(site, self._run_report(message))
        if kind == "log":
            sites.site_log(self.core, site, message.log.run_id, message.log.offset, message.log.data)
        elif kind == "inventory":
            inventory = inventory_from_pb(message.inventory.inventory)
            if inventory != session.inventory:  # a repeat only renews the lease
                sites.site_inventory(self.core, site, inventory)
                session.inventory = inventory
        elif kind == "health":
            sites.site_health(
                self.core, site, message.health.ray_down, message.health.message, message.health.refusing_starts
            )
        elif kind == "heartbeat":
            pass  # renewing the lease is all it does
        elif kind == "hello":
            raise InvalidArgument("hello may only be the first message on a stream")
        else:
            raise InvalidArgument("empty agent message")
        return []
