from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_LEASED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLING: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_STARTING: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_STOPPED: _ClassVar[RunState]
    RUN_STATE_UNKNOWN: _ClassVar[RunState]
    RUN_STATE_LOST: _ClassVar[RunState]

class SiteState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SITE_STATE_UNSPECIFIED: _ClassVar[SiteState]
    SITE_STATE_READY: _ClassVar[SiteState]
    SITE_STATE_CORDONED: _ClassVar[SiteState]
    SITE_STATE_LOST: _ClassVar[SiteState]
    SITE_STATE_DRAINING: _ClassVar[SiteState]
    SITE_STATE_DEGRADED: _ClassVar[SiteState]
    SITE_STATE_CONNECTING: _ClassVar[SiteState]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
    ROLE_RESEARCHER: _ClassVar[Role]
    ROLE_SITE: _ClassVar[Role]
    ROLE_INSTITUTION_ADMIN: _ClassVar[Role]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_LEASED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLING: JobState
JOB_STATE_CANCELLED: JobState
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_STARTING: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_STOPPED: RunState
RUN_STATE_UNKNOWN: RunState
RUN_STATE_LOST: RunState
SITE_STATE_UNSPECIFIED: SiteState
SITE_STATE_READY: SiteState
SITE_STATE_CORDONED: SiteState
SITE_STATE_LOST: SiteState
SITE_STATE_DRAINING: SiteState
SITE_STATE_DEGRADED: SiteState
SITE_STATE_CONNECTING: SiteState
ROLE_UNSPECIFIED: Role
ROLE_ADMIN: Role
ROLE_RESEARCHER: Role
ROLE_SITE: Role
ROLE_INSTITUTION_ADMIN: Role

class GpuPool(_message.Message):
    __slots__ = ("model", "memory_mb", "total", "free", "largest_node")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    LARGEST_NODE_FIELD_NUMBER: _ClassVar[int]
    model: str
    memory_mb: int
    total: int
    free: int
    largest_node: int
    def __init__(self, model: _Optional[str] = ..., memory_mb: _Optional[int] = ..., total: _Optional[int] = ..., free: _Optional[int] = ..., largest_node: _Optional[int] = ...) -> None: ...

class Inventory(_message.Message):
    __slots__ = ("gpus", "cpus", "memory_mb", "nodes")
    GPUS_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    gpus: _containers.RepeatedCompositeFieldContainer[GpuPool]
    cpus: float
    memory_mb: int
    nodes: int
    def __init__(self, gpus: _Optional[_Iterable[_Union[GpuPool, _Mapping]]] = ..., cpus: _Optional[float] = ..., memory_mb: _Optional[int] = ..., nodes: _Optional[int] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("gpus", "gpu_models", "min_gpu_memory_mb", "cpus", "memory_mb")
    GPUS_FIELD_NUMBER: _ClassVar[int]
    GPU_MODELS_FIELD_NUMBER: _ClassVar[int]
    MIN_GPU_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    gpus: int
    gpu_models: _containers.RepeatedScalarFieldContainer[str]
    min_gpu_memory_mb: int
    cpus: float
    memory_mb: int
    def __init__(self, gpus: _Optional[int] = ..., gpu_models: _Optional[_Iterable[str]] = ..., min_gpu_memory_mb: _Optional[int] = ..., cpus: _Optional[float] = ..., memory_mb: _Optional[int] = ...) -> None: ...

class RuntimeEnv(_message.Message):
    __slots__ = ("working_dir_digest", "pip", "env")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKING_DIR_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PIP_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    working_dir_digest: str
    pip: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    def __init__(self, working_dir_digest: _Optional[str] = ..., pip: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("name", "entrypoint", "runtime_env", "resources", "countries", "walltime_seconds", "priority", "max_attempts", "project", "data_country", "non_preemptible", "site_labels", "retry_failed", "secret_env", "after", "notify_url", "low_carbon", "low_carbon_first")
    class SiteLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SecretEnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    WALLTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    NON_PREEMPTIBLE_FIELD_NUMBER: _ClassVar[int]
    SITE_LABELS_FIELD_NUMBER: _ClassVar[int]
    RETRY_FAILED_FIELD_NUMBER: _ClassVar[int]
    SECRET_ENV_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_URL_FIELD_NUMBER: _ClassVar[int]
    LOW_CARBON_FIELD_NUMBER: _ClassVar[int]
    LOW_CARBON_FIRST_FIELD_NUMBER: _ClassVar[int]
    name: str
    entrypoint: str
    runtime_env: RuntimeEnv
    resources: Resources
    countries: _containers.RepeatedScalarFieldContainer[str]
    walltime_seconds: int
    priority: int
    max_attempts: int
    project: str
    data_country: str
    non_preemptible: bool
    site_labels: _containers.ScalarMap[str, str]
    retry_failed: bool
    secret_env: _containers.ScalarMap[str, str]
    after: _containers.RepeatedScalarFieldContainer[str]
    notify_url: str
    low_carbon: bool
    low_carbon_first: bool
    def __init__(self, name: _Optional[str] = ..., entrypoint: _Optional[str] = ..., runtime_env: _Optional[_Union[RuntimeEnv, _Mapping]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., countries: _Optional[_Iterable[str]] = ..., walltime_seconds: _Optional[int] = ..., priority: _Optional[int] = ..., max_attempts: _Optional[int] = ..., project: _Optional[str] = ..., data_country: _Optional[str] = ..., non_preemptible: _Optional[bool] = ..., site_labels: _Optional[_Mapping[str, str]] = ..., retry_failed: _Optional[bool] = ..., secret_env: _Optional[_Mapping[str, str]] = ..., after: _Optional[_Iterable[str]] = ..., notify_url: _Optional[str] = ..., low_carbon: _Optional[bool] = ..., low_carbon_first: _Optional[bool] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "spec", "state", "owner", "institution", "site", "country", "attempts", "reason", "run_id", "submitted_at", "started_at", "finished_at", "gpu_model", "project", "failures", "last_preemption", "infra_requeues", "array_id", "array_index", "estimate", "dependencies", "cancelled_dependents", "carbon")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_PREEMPTION_FIELD_NUMBER: _ClassVar[int]
    INFRA_REQUEUES_FIELD_NUMBER: _ClassVar[int]
    ARRAY_ID_FIELD_NUMBER: _ClassVar[int]
    ARRAY_INDEX_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_DEPENDENTS_FIELD_NUMBER: _ClassVar[int]
    CARBON_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: JobSpec
    state: JobState
    owner: str
    institution: str
    site: str
    country: str
    attempts: int
    reason: str
    run_id: str
    submitted_at: float
    started_at: float
    finished_at: float
    gpu_model: str
    project: str
    failures: int
    last_preemption: JobPreemption
    infra_requeues: int
    array_id: str
    array_index: int
    estimate: StartEstimate
    dependencies: _containers.RepeatedCompositeFieldContainer[DependencyStatus]
    cancelled_dependents: _containers.RepeatedScalarFieldContainer[str]
    carbon: JobCarbon
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., owner: _Optional[str] = ..., institution: _Optional[str] = ..., site: _Optional[str] = ..., country: _Optional[str] = ..., attempts: _Optional[int] = ..., reason: _Optional[str] = ..., run_id: _Optional[str] = ..., submitted_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., gpu_model: _Optional[str] = ..., project: _Optional[str] = ..., failures: _Optional[int] = ..., last_preemption: _Optional[_Union[JobPreemption, _Mapping]] = ..., infra_requeues: _Optional[int] = ..., array_id: _Optional[str] = ..., array_index: _Optional[int] = ..., estimate: _Optional[_Union[StartEstimate, _Mapping]] = ..., dependencies: _Optional[_Iterable[_Union[DependencyStatus, _Mapping]]] = ..., cancelled_dependents: _Optional[_Iterable[str]] = ..., carbon: _Optional[_Union[JobCarbon, _Mapping]] = ...) -> None: ...

class JobCarbon(_message.Message):
    __slots__ = ("site_intensity", "min_intensity", "max_intensity", "sites")
    SITE_INTENSITY_FIELD_NUMBER: _ClassVar[int]
    MIN_INTENSITY_FIELD_NUMBER: _ClassVar[int]
    MAX_INTENSITY_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    site_intensity: float
    min_intensity: float
    max_intensity: float
    sites: int
    def __init__(self, site_intensity: _Optional[float] = ..., min_intensity: _Optional[float] = ..., max_intensity: _Optional[float] = ..., sites: _Optional[int] = ...) -> None: ...

class DependencyStatus(_message.Message):
    __slots__ = ("job_id", "condition", "state", "status")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    condition: str
    state: str
    status: str
    def __init__(self, job_id: _Optional[str] = ..., condition: _Optional[str] = ..., state: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class StartEstimate(_message.Message):
    __slots__ = ("at", "later_than", "assumptions")
    AT_FIELD_NUMBER: _ClassVar[int]
    LATER_THAN_FIELD_NUMBER: _ClassVar[int]
    ASSUMPTIONS_FIELD_NUMBER: _ClassVar[int]
    at: float
    later_than: float
    assumptions: str
    def __init__(self, at: _Optional[float] = ..., later_than: _Optional[float] = ..., assumptions: _Optional[str] = ...) -> None: ...

class JobPreemption(_message.Message):
    __slots__ = ("at", "kind", "beneficiary", "reason")
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BENEFICIARY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    at: float
    kind: str
    beneficiary: str
    reason: str
    def __init__(self, at: _Optional[float] = ..., kind: _Optional[str] = ..., beneficiary: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("run_id", "offset", "data")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    offset: int
    data: bytes
    def __init__(self, run_id: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class PackageChunk(_message.Message):
    __slots__ = ("digest", "size", "data")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size: int
    data: bytes
    def __init__(self, digest: _Optional[str] = ..., size: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...
