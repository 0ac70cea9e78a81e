from minga.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FailureKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_KIND_UNSPECIFIED: _ClassVar[FailureKind]
    FAILURE_KIND_USER: _ClassVar[FailureKind]
    FAILURE_KIND_INFRASTRUCTURE: _ClassVar[FailureKind]
FAILURE_KIND_UNSPECIFIED: FailureKind
FAILURE_KIND_USER: FailureKind
FAILURE_KIND_INFRASTRUCTURE: FailureKind

class JoinRequest(_message.Message):
    __slots__ = ("join_token", "csr")
    JOIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    join_token: str
    csr: bytes
    def __init__(self, join_token: _Optional[str] = ..., csr: _Optional[bytes] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("site", "institution", "country", "site_token", "certificate", "ca_certificate", "site_endpoint")
    SITE_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    SITE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    SITE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    site: str
    institution: str
    country: str
    site_token: str
    certificate: bytes
    ca_certificate: bytes
    site_endpoint: str
    def __init__(self, site: _Optional[str] = ..., institution: _Optional[str] = ..., country: _Optional[str] = ..., site_token: _Optional[str] = ..., certificate: _Optional[bytes] = ..., ca_certificate: _Optional[bytes] = ..., site_endpoint: _Optional[str] = ...) -> None: ...

class RenewCertificateRequest(_message.Message):
    __slots__ = ("csr",)
    CSR_FIELD_NUMBER: _ClassVar[int]
    csr: bytes
    def __init__(self, csr: _Optional[bytes] = ...) -> None: ...

class RenewCertificateResponse(_message.Message):
    __slots__ = ("certificate",)
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: bytes
    def __init__(self, certificate: _Optional[bytes] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("agent_version", "inventory", "runs", "health")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    inventory: _common_pb2.Inventory
    runs: _containers.RepeatedCompositeFieldContainer[RunReport]
    health: Health
    def __init__(self, agent_version: _Optional[str] = ..., inventory: _Optional[_Union[_common_pb2.Inventory, _Mapping]] = ..., runs: _Optional[_Iterable[_Union[RunReport, _Mapping]]] = ..., health: _Optional[_Union[Health, _Mapping]] = ...) -> None: ...

class RunReport(_message.Message):
    __slots__ = ("run_id", "job_id", "epoch", "state", "message", "failure")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    job_id: str
    epoch: int
    state: _common_pb2.RunState
    message: str
    failure: FailureKind
    def __init__(self, run_id: _Optional[str] = ..., job_id: _Optional[str] = ..., epoch: _Optional[int] = ..., state: _Optional[_Union[_common_pb2.RunState, str]] = ..., message: _Optional[str] = ..., failure: _Optional[_Union[FailureKind, str]] = ...) -> None: ...

class Health(_message.Message):
    __slots__ = ("ray_down", "message", "refusing_starts")
    RAY_DOWN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REFUSING_STARTS_FIELD_NUMBER: _ClassVar[int]
    ray_down: bool
    message: str
    refusing_starts: bool
    def __init__(self, ray_down: _Optional[bool] = ..., message: _Optional[str] = ..., refusing_starts: _Optional[bool] = ...) -> None: ...

class InventoryUpdate(_message.Message):
    __slots__ = ("inventory",)
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    inventory: _common_pb2.Inventory
    def __init__(self, inventory: _Optional[_Union[_common_pb2.Inventory, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("hello", "inventory", "run", "log", "heartbeat", "health")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    inventory: InventoryUpdate
    run: RunReport
    log: _common_pb2.LogChunk
    heartbeat: Heartbeat
    health: Health
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., inventory: _Optional[_Union[InventoryUpdate, _Mapping]] = ..., run: _Optional[_Union[RunReport, _Mapping]] = ..., log: _Optional[_Union[_common_pb2.LogChunk, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., health: _Optional[_Union[Health, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("site", "heartbeat_seconds")
    SITE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    site: str
    heartbeat_seconds: float
    def __init__(self, site: _Optional[str] = ..., heartbeat_seconds: _Optional[float] = ...) -> None: ...

class StartRun(_message.Message):
    __slots__ = ("run_id", "job_id", "epoch", "spec", "gpu_model", "notice_seconds", "array_job_id", "array_index")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    NOTICE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ARRAY_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ARRAY_INDEX_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    job_id: str
    epoch: int
    spec: _common_pb2.JobSpec
    gpu_model: str
    notice_seconds: int
    array_job_id: str
    array_index: int
    def __init__(self, run_id: _Optional[str] = ..., job_id: _Optional[str] = ..., epoch: _Optional[int] = ..., spec: _Optional[_Union[_common_pb2.JobSpec, _Mapping]] = ..., gpu_model: _Optional[str] = ..., notice_seconds: _Optional[int] = ..., array_job_id: _Optional[str] = ..., array_index: _Optional[int] = ...) -> None: ...

class StopRun(_message.Message):
    __slots__ = ("run_id", "reason")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    reason: str
    def __init__(self, run_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class BrokerMessage(_message.Message):
    __slots__ = ("welcome", "start", "stop")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    start: StartRun
    stop: StopRun
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., start: _Optional[_Union[StartRun, _Mapping]] = ..., stop: _Optional[_Union[StopRun, _Mapping]] = ...) -> None: ...

class FetchPackageRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class FetchPackageResponse(_message.Message):
    __slots__ = ("digest", "data")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    digest: str
    data: bytes
    def __init__(self, digest: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...
