"""JobService: converts, delegates to scheduler.service.jobs, converts back."""

from __future__ import annotations

from collections.abc import Iterator

from minga.common.domain import PackageLimits
from minga.common.wire.enums import job_state_from_pb
from minga.common.wire.jobs import array_to_pb, job_to_pb, package_limits_to_pb, spec_from_pb
from minga.scheduler.api import audit
from minga.scheduler.api.interceptor import CallContext
from minga.scheduler.core import Core
from minga.scheduler.service import jobs, packages
from minga.v1 import common_pb2, job_pb2, job_pb2_grpc


class JobServicer(job_pb2_grpc.JobServiceServicer):
    def __init__(self, core: Core) -> None:
        self.core = core

    def SubmitJob(self, request: job_pb2.SubmitJobRequest, context: CallContext) -> job_pb2.SubmitJobResponse:
        if request.array:
            job, array, created = jobs.submit_array(
                self.core,
                context.caller,
                spec_from_pb(request.spec),
                request.array,
                request.idempotency_key,
                request.allow_unknown,
            )
            return job_pb2.SubmitJobResponse(
                job=job_to_pb(job), created=created, array=array_to_pb(array) if array.id else None
            )
        line = audit.job_line(audit.SUBMIT_JOB, self.core.clock.now(), context.caller, context.peer())
        job, created = jobs.submit_job(
            self.core,
            context.caller,
            spec_from_pb(request.spec),
            request.idempotency_key,
            request.allow_unknown,
            audit=line,
        )
        context.audited = True  # committed with the job
        return job_pb2.SubmitJobResponse(job=job_to_pb(job), created=created)

    def GetJob(self, request: job_pb2.GetJobRequest, context: CallContext) -> common_pb2.Job:
        return job_to_pb(jobs.job_status(self.core, context.caller, request.job_id))

    def ListJobs(self, request: job_pb2.ListJobsRequest, context: CallContext) -> job_pb2.ListJobsResponse:
        found, arrays = jobs.list_jobs(
            self.core, context.caller, request.all, job_state_from_pb(request.state), request.group_arrays
        )
        return job_pb2.ListJobsResponse(jobs=[job_to_pb(j) for j in found], arrays=[array_to_pb(a) for a in arrays])

    def GetJobArray(self, request: job_pb2.GetJobRequest, context: CallContext) -> job_pb2.JobArray:
        return array_to_pb(jobs.get_array(self.core, context.caller, request.job_id))

    def CancelJobArray(self, request: job_pb2.CancelJobRequest, context: CallContext) -> job_pb2.JobArray:
        array, dependents = jobs.cancel_array(self.core, context.caller, request.job_id, request.with_dependents)
        answer = array_to_pb(array)
        answer.cancelled_dependents.extend(dependents)
        return answer

    def CancelJob(self, request: job_pb2.CancelJobRequest, context: CallContext) -> common_pb2.Job:
        job, dependents = jobs.cancel_job(self.core, context.caller, request.job_id, request.with_dependents)
        answer = job_to_pb(job)
        answer.cancelled_dependents.extend(dependents)
        return answer

    def GetJobLogs(self, request: job_pb2.GetJobLogsRequest, context: CallContext) -> Iterator[common_pb2.LogChunk]:
        chunks = jobs.job_logs(
            self.core, context.caller, request.job_id, request.follow, max(0, request.offset), context.is_active
        )
        for run_id, offset, data in chunks:
            yield common_pb2.LogChunk(run_id=run_id, offset=offset, data=data)

    def HasPackage(self, request: job_pb2.HasPackageRequest, context: CallContext) -> job_pb2.HasPackageResponse:
        return job_pb2.HasPackageResponse(present=jobs.has_package(self.core, request.digest))

    def UploadPackage(
        self, request: job_pb2.UploadPackageRequest, context: CallContext
    ) -> job_pb2.UploadPackageResponse:
        return job_pb2.UploadPackageResponse(digest=jobs.upload_package(self.core, request.digest, request.data))

    def UploadPackageStream(
        self, request_iterator: Iterator[common_pb2.PackageChunk], context: CallContext
    ) -> job_pb2.UploadPackageResponse:
        chunks = ((c.digest, c.size, c.data) for c in request_iterator)
        return job_pb2.UploadPackageResponse(digest=packages.receive_package(self.core, chunks))

    def GetPackageLimits(self, request: job_pb2.GetPackageLimitsRequest, context: CallContext) -> job_pb2.PackageLimits:
        return package_limits_to_pb(
            PackageLimits(
                max_package_bytes=self.core.max_package_bytes,
                chunk_bytes=packages.CHUNK_BYTES,
                setting=packages.LIMIT_SETTING,
            )
        )
