"""Runs on the site stream: the broker's commands (StartRun, StopRun) and a site's run
reports, to and from their messages."""

from __future__ import annotations

from minga.common.domain import RunState
from minga.common.site_messages import Command, RunReport, StartRunCommand
from minga.common.wire.enums import run_state_from_pb, run_state_to_pb
from minga.common.wire.jobs import spec_to_pb
from minga.v1 import site_pb2

MAX_MESSAGE_CHARS = 16_000  # the broker refuses report texts over 16,384 characters


def message_text(text: str) -> str:
    """A report's or a health message's text within the broker's limit (Ray's tracebacks
    can be long): the end is kept."""
    return text if len(text) <= MAX_MESSAGE_CHARS else "..." + text[-(MAX_MESSAGE_CHARS - 3) :]


def run_report_to_pb(report: RunReport, job_id: str, epoch: int) -> site_pb2.RunReport:
    failure = site_pb2.FAILURE_KIND_UNSPECIFIED
    if report.state is RunState.FAILED:
        failure = site_pb2.FAILURE_KIND_INFRASTRUCTURE if report.infrastructure else site_pb2.FAILURE_KIND_USER
    return site_pb2.RunReport(
        run_id=report.run_id,
        job_id=job_id,
        epoch=epoch,
        state=run_state_to_pb(report.state),
        message=message_text(report.message),
        failure=failure,
    )


def run_report_from_pb(pb: site_pb2.RunReport) -> RunReport:
    return RunReport(
        run_id=pb.run_id,
        state=run_state_from_pb(pb.state),
        message=pb.message,
        infrastructure=pb.failure == site_pb2.FAILURE_KIND_INFRASTRUCTURE,
    )


def command_to_pb(cmd: Command) -> site_pb2.BrokerMessage:
    """A command as the broker sends it; a StartRun alone carries the job's secret values."""
    if isinstance(cmd, StartRunCommand):
        return site_pb2.BrokerMessage(
            start=site_pb2.StartRun(
                run_id=cmd.run.id,
                job_id=cmd.run.job_id,
                epoch=cmd.run.epoch,
                spec=spec_to_pb(cmd.spec, reveal_secrets=True),
                gpu_model=cmd.run.gpu_model,
                notice_seconds=cmd.notice_seconds,
                array_job_id=cmd.array_id,
                array_index=cmd.array_index,
            )
        )
    return site_pb2.BrokerMessage(stop=site_pb2.StopRun(run_id=cmd.run_id, reason=cmd.reason))
