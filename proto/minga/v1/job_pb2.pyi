from minga.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec", "idempotency_key", "allow_unknown", "array")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ALLOW_UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    spec: _common_pb2.JobSpec
    idempotency_key: str
    allow_unknown: bool
    array: str
    def __init__(self, spec: _Optional[_Union[_common_pb2.JobSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., allow_unknown: _Optional[bool] = ..., array: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job", "created", "array")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    created: bool
    array: JobArray
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ..., created: _Optional[bool] = ..., array: _Optional[_Union[JobArray, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("all", "state", "group_arrays")
    ALL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GROUP_ARRAYS_FIELD_NUMBER: _ClassVar[int]
    all: bool
    state: _common_pb2.JobState
    group_arrays: bool
    def __init__(self, all: _Optional[bool] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., group_arrays: _Optional[bool] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "arrays")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    ARRAYS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Job]
    arrays: _containers.RepeatedCompositeFieldContainer[JobArray]
    def __init__(self, jobs: _Optional[_Iterable[_Union[_common_pb2.Job, _Mapping]]] = ..., arrays: _Optional[_Iterable[_Union[JobArray, _Mapping]]] = ...) -> None: ...

class JobArray(_message.Message):
    __slots__ = ("id", "name", "owner", "institution", "project", "tasks", "limit", "submitted_at", "pending", "running", "succeeded", "failed", "cancelled", "indices", "cancelled_dependents")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_DEPENDENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    owner: str
    institution: str
    project: str
    tasks: int
    limit: int
    submitted_at: float
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    indices: str
    cancelled_dependents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., owner: _Optional[str] = ..., institution: _Optional[str] = ..., project: _Optional[str] = ..., tasks: _Optional[int] = ..., limit: _Optional[int] = ..., submitted_at: _Optional[float] = ..., pending: _Optional[int] = ..., running: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., indices: _Optional[str] = ..., cancelled_dependents: _Optional[_Iterable[str]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id", "with_dependents")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WITH_DEPENDENTS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    with_dependents: bool
    def __init__(self, job_id: _Optional[str] = ..., with_dependents: _Optional[bool] = ...) -> None: ...

class GetJobLogsRequest(_message.Message):
    __slots__ = ("job_id", "follow", "offset")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    follow: bool
    offset: int
    def __init__(self, job_id: _Optional[str] = ..., follow: _Optional[bool] = ..., offset: _Optional[int] = ...) -> None: ...

class HasPackageRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class HasPackageResponse(_message.Message):
    __slots__ = ("present",)
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    present: bool
    def __init__(self, present: _Optional[bool] = ...) -> None: ...

class UploadPackageRequest(_message.Message):
    __slots__ = ("digest", "data")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    digest: str
    data: bytes
    def __init__(self, digest: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadPackageResponse(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class GetPackageLimitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PackageLimits(_message.Message):
    __slots__ = ("max_package_bytes", "chunk_bytes", "setting")
    MAX_PACKAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    SETTING_FIELD_NUMBER: _ClassVar[int]
    max_package_bytes: int
    chunk_bytes: int
    setting: str
    def __init__(self, max_package_bytes: _Optional[int] = ..., chunk_bytes: _Optional[int] = ..., setting: _Optional[str] = ...) -> None: ...
