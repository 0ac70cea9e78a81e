from minga.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BrokerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BrokerStatusResponse(_message.Message):
    __slots__ = ("address", "leading", "leader_address", "leading_since", "role")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEADING_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEADING_SINCE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    address: str
    leading: bool
    leader_address: str
    leading_since: float
    role: str
    def __init__(self, address: _Optional[str] = ..., leading: _Optional[bool] = ..., leader_address: _Optional[str] = ..., leading_since: _Optional[float] = ..., role: _Optional[str] = ...) -> None: ...

class UsageReportRequest(_message.Message):
    __slots__ = ("since_seconds", "by")
    SINCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    since_seconds: float
    by: str
    def __init__(self, since_seconds: _Optional[float] = ..., by: _Optional[str] = ...) -> None: ...

class UsageReportLine(_message.Message):
    __slots__ = ("key", "country", "consumed_gpu_hours", "consumed_normalized", "contributed_gpu_hours", "contributed_normalized", "energy_kwh", "emissions_kgco2e")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_GPU_HOURS_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_NORMALIZED_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTED_GPU_HOURS_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTED_NORMALIZED_FIELD_NUMBER: _ClassVar[int]
    ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    EMISSIONS_KGCO2E_FIELD_NUMBER: _ClassVar[int]
    key: str
    country: str
    consumed_gpu_hours: float
    consumed_normalized: float
    contributed_gpu_hours: float
    contributed_normalized: float
    energy_kwh: float
    emissions_kgco2e: float
    def __init__(self, key: _Optional[str] = ..., country: _Optional[str] = ..., consumed_gpu_hours: _Optional[float] = ..., consumed_normalized: _Optional[float] = ..., contributed_gpu_hours: _Optional[float] = ..., contributed_normalized: _Optional[float] = ..., energy_kwh: _Optional[float] = ..., emissions_kgco2e: _Optional[float] = ...) -> None: ...

class UsageReportResponse(_message.Message):
    __slots__ = ("since", "until", "by", "lines")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    since: float
    until: float
    by: str
    lines: _containers.RepeatedCompositeFieldContainer[UsageReportLine]
    def __init__(self, since: _Optional[float] = ..., until: _Optional[float] = ..., by: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[UsageReportLine, _Mapping]]] = ...) -> None: ...

class SetSiteLabelsRequest(_message.Message):
    __slots__ = ("name", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LendingPolicy(_message.Message):
    __slots__ = ("allow_countries", "deny_countries", "allow_institutions", "deny_institutions", "max_lent_gpus", "guest_max_walltime_seconds", "timezone", "lend_windows", "closed_windows", "no_env", "env_allow", "no_pip", "pip_allow")
    ALLOW_COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    DENY_COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_INSTITUTIONS_FIELD_NUMBER: _ClassVar[int]
    DENY_INSTITUTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_LENT_GPUS_FIELD_NUMBER: _ClassVar[int]
    GUEST_MAX_WALLTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    LEND_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    NO_ENV_FIELD_NUMBER: _ClassVar[int]
    ENV_ALLOW_FIELD_NUMBER: _ClassVar[int]
    NO_PIP_FIELD_NUMBER: _ClassVar[int]
    PIP_ALLOW_FIELD_NUMBER: _ClassVar[int]
    allow_countries: _containers.RepeatedScalarFieldContainer[str]
    deny_countries: _containers.RepeatedScalarFieldContainer[str]
    allow_institutions: _containers.RepeatedScalarFieldContainer[str]
    deny_institutions: _containers.RepeatedScalarFieldContainer[str]
    max_lent_gpus: int
    guest_max_walltime_seconds: int
    timezone: str
    lend_windows: _containers.RepeatedScalarFieldContainer[str]
    closed_windows: _containers.RepeatedScalarFieldContainer[str]
    no_env: bool
    env_allow: _containers.RepeatedScalarFieldContainer[str]
    no_pip: bool
    pip_allow: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, allow_countries: _Optional[_Iterable[str]] = ..., deny_countries: _Optional[_Iterable[str]] = ..., allow_institutions: _Optional[_Iterable[str]] = ..., deny_institutions: _Optional[_Iterable[str]] = ..., max_lent_gpus: _Optional[int] = ..., guest_max_walltime_seconds: _Optional[int] = ..., timezone: _Optional[str] = ..., lend_windows: _Optional[_Iterable[str]] = ..., closed_windows: _Optional[_Iterable[str]] = ..., no_env: _Optional[bool] = ..., env_allow: _Optional[_Iterable[str]] = ..., no_pip: _Optional[bool] = ..., pip_allow: _Optional[_Iterable[str]] = ...) -> None: ...

class SetLendingPolicyRequest(_message.Message):
    __slots__ = ("site", "policy", "clear")
    SITE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELD_NUMBER: _ClassVar[int]
    site: str
    policy: LendingPolicy
    clear: bool
    def __init__(self, site: _Optional[str] = ..., policy: _Optional[_Union[LendingPolicy, _Mapping]] = ..., clear: _Optional[bool] = ...) -> None: ...

class GetLendingPolicyRequest(_message.Message):
    __slots__ = ("site",)
    SITE_FIELD_NUMBER: _ClassVar[int]
    site: str
    def __init__(self, site: _Optional[str] = ...) -> None: ...

class LendingPolicyResponse(_message.Message):
    __slots__ = ("site", "institution", "has_policy", "policy", "open_now")
    SITE_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    HAS_POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    OPEN_NOW_FIELD_NUMBER: _ClassVar[int]
    site: str
    institution: str
    has_policy: bool
    policy: LendingPolicy
    open_now: bool
    def __init__(self, site: _Optional[str] = ..., institution: _Optional[str] = ..., has_policy: _Optional[bool] = ..., policy: _Optional[_Union[LendingPolicy, _Mapping]] = ..., open_now: _Optional[bool] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("id", "institution", "name", "weight")
    ID_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    id: str
    institution: str
    name: str
    weight: float
    def __init__(self, id: _Optional[str] = ..., institution: _Optional[str] = ..., name: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class AddProjectRequest(_message.Message):
    __slots__ = ("institution", "name", "weight")
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    institution: str
    name: str
    weight: float
    def __init__(self, institution: _Optional[str] = ..., name: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class ListProjectsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProjectsResponse(_message.Message):
    __slots__ = ("projects",)
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[Project]
    def __init__(self, projects: _Optional[_Iterable[_Union[Project, _Mapping]]] = ...) -> None: ...

class SetWeightRequest(_message.Message):
    __slots__ = ("kind", "id", "weight")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id: str
    weight: float
    def __init__(self, kind: _Optional[str] = ..., id: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class SetWeightResponse(_message.Message):
    __slots__ = ("kind", "id", "weight")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id: str
    weight: float
    def __init__(self, kind: _Optional[str] = ..., id: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class ModelWeight(_message.Message):
    __slots__ = ("model", "weight")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    model: str
    weight: float
    def __init__(self, model: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("share_policy", "half_life_seconds", "base_grant", "model_weights", "preemption_grace_seconds", "age_weight", "fair_share_preemption", "preemption_threshold", "preemption_cap", "preemption_notice_seconds", "base_grant_fraction", "reservation_min_age_seconds", "webhook_hosts", "set_webhook_hosts", "low_carbon_default")
    SHARE_POLICY_FIELD_NUMBER: _ClassVar[int]
    HALF_LIFE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BASE_GRANT_FIELD_NUMBER: _ClassVar[int]
    MODEL_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    PREEMPTION_GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AGE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    FAIR_SHARE_PREEMPTION_FIELD_NUMBER: _ClassVar[int]
    PREEMPTION_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PREEMPTION_CAP_FIELD_NUMBER: _ClassVar[int]
    PREEMPTION_NOTICE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BASE_GRANT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_MIN_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_HOSTS_FIELD_NUMBER: _ClassVar[int]
    SET_WEBHOOK_HOSTS_FIELD_NUMBER: _ClassVar[int]
    LOW_CARBON_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    share_policy: str
    half_life_seconds: float
    base_grant: float
    model_weights: _containers.RepeatedCompositeFieldContainer[ModelWeight]
    preemption_grace_seconds: float
    age_weight: float
    fair_share_preemption: bool
    preemption_threshold: float
    preemption_cap: float
    preemption_notice_seconds: float
    base_grant_fraction: float
    reservation_min_age_seconds: float
    webhook_hosts: _containers.RepeatedScalarFieldContainer[str]
    set_webhook_hosts: bool
    low_carbon_default: bool
    def __init__(self, share_policy: _Optional[str] = ..., half_life_seconds: _Optional[float] = ..., base_grant: _Optional[float] = ..., model_weights: _Optional[_Iterable[_Union[ModelWeight, _Mapping]]] = ..., preemption_grace_seconds: _Optional[float] = ..., age_weight: _Optional[float] = ..., fair_share_preemption: _Optional[bool] = ..., preemption_threshold: _Optional[float] = ..., preemption_cap: _Optional[float] = ..., preemption_notice_seconds: _Optional[float] = ..., base_grant_fraction: _Optional[float] = ..., reservation_min_age_seconds: _Optional[float] = ..., webhook_hosts: _Optional[_Iterable[str]] = ..., set_webhook_hosts: _Optional[bool] = ..., low_carbon_default: _Optional[bool] = ...) -> None: ...

class SetPolicyRequest(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateWebhookSecretRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateWebhookSecretResponse(_message.Message):
    __slots__ = ("user", "secret", "replaced")
    USER_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    user: str
    secret: str
    replaced: bool
    def __init__(self, user: _Optional[str] = ..., secret: _Optional[str] = ..., replaced: _Optional[bool] = ...) -> None: ...

class SetGuaranteeRequest(_message.Message):
    __slots__ = ("institution", "gpu_model", "gpus")
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    institution: str
    gpu_model: str
    gpus: int
    def __init__(self, institution: _Optional[str] = ..., gpu_model: _Optional[str] = ..., gpus: _Optional[int] = ...) -> None: ...

class SetGuaranteeResponse(_message.Message):
    __slots__ = ("institution", "gpu_model", "gpus")
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    institution: str
    gpu_model: str
    gpus: int
    def __init__(self, institution: _Optional[str] = ..., gpu_model: _Optional[str] = ..., gpus: _Optional[int] = ...) -> None: ...

class SetLimitsRequest(_message.Message):
    __slots__ = ("institution", "borrowing_limit", "lending_limit")
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    BORROWING_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LENDING_LIMIT_FIELD_NUMBER: _ClassVar[int]
    institution: str
    borrowing_limit: int
    lending_limit: int
    def __init__(self, institution: _Optional[str] = ..., borrowing_limit: _Optional[int] = ..., lending_limit: _Optional[int] = ...) -> None: ...

class SetLimitsResponse(_message.Message):
    __slots__ = ("institution", "borrowing_limit", "lending_limit")
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    BORROWING_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LENDING_LIMIT_FIELD_NUMBER: _ClassVar[int]
    institution: str
    borrowing_limit: int
    lending_limit: int
    def __init__(self, institution: _Optional[str] = ..., borrowing_limit: _Optional[int] = ..., lending_limit: _Optional[int] = ...) -> None: ...

class AccountLimits(_message.Message):
    __slots__ = ("kind", "id", "max_gpus", "max_pending", "max_walltime_seconds")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    MAX_GPUS_FIELD_NUMBER: _ClassVar[int]
    MAX_PENDING_FIELD_NUMBER: _ClassVar[int]
    MAX_WALLTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id: str
    max_gpus: int
    max_pending: int
    max_walltime_seconds: int
    def __init__(self, kind: _Optional[str] = ..., id: _Optional[str] = ..., max_gpus: _Optional[int] = ..., max_pending: _Optional[int] = ..., max_walltime_seconds: _Optional[int] = ...) -> None: ...

class SetAccountLimitsRequest(_message.Message):
    __slots__ = ("limits",)
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: AccountLimits
    def __init__(self, limits: _Optional[_Union[AccountLimits, _Mapping]] = ...) -> None: ...

class ListAccountLimitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAccountLimitsResponse(_message.Message):
    __slots__ = ("limits",)
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[AccountLimits]
    def __init__(self, limits: _Optional[_Iterable[_Union[AccountLimits, _Mapping]]] = ...) -> None: ...

class Institution(_message.Message):
    __slots__ = ("slug", "name", "country", "weight")
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    slug: str
    name: str
    country: str
    weight: float
    def __init__(self, slug: _Optional[str] = ..., name: _Optional[str] = ..., country: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class AddInstitutionRequest(_message.Message):
    __slots__ = ("institution",)
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    institution: Institution
    def __init__(self, institution: _Optional[_Union[Institution, _Mapping]] = ...) -> None: ...

class ListInstitutionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListInstitutionsResponse(_message.Message):
    __slots__ = ("institutions",)
    INSTITUTIONS_FIELD_NUMBER: _ClassVar[int]
    institutions: _containers.RepeatedCompositeFieldContainer[Institution]
    def __init__(self, institutions: _Optional[_Iterable[_Union[Institution, _Mapping]]] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("name", "institution", "role", "created_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    institution: str
    role: _common_pb2.Role
    created_at: float
    def __init__(self, name: _Optional[str] = ..., institution: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., created_at: _Optional[float] = ...) -> None: ...

class AddUserRequest(_message.Message):
    __slots__ = ("name", "institution", "role", "ttl_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    institution: str
    role: _common_pb2.Role
    ttl_seconds: int
    def __init__(self, name: _Optional[str] = ..., institution: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class AddUserResponse(_message.Message):
    __slots__ = ("user", "token", "expires_at")
    USER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    user: User
    token: str
    expires_at: float
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., token: _Optional[str] = ..., expires_at: _Optional[float] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[User]
    def __init__(self, users: _Optional[_Iterable[_Union[User, _Mapping]]] = ...) -> None: ...

class CreateSiteTokenRequest(_message.Message):
    __slots__ = ("institution", "site", "ttl_seconds", "country")
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    institution: str
    site: str
    ttl_seconds: int
    country: str
    def __init__(self, institution: _Optional[str] = ..., site: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., country: _Optional[str] = ...) -> None: ...

class CreateSiteTokenResponse(_message.Message):
    __slots__ = ("site", "token", "expires_at")
    SITE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    site: str
    token: str
    expires_at: float
    def __init__(self, site: _Optional[str] = ..., token: _Optional[str] = ..., expires_at: _Optional[float] = ...) -> None: ...

class Site(_message.Message):
    __slots__ = ("name", "institution", "country", "state", "connected", "inventory", "last_seen", "gpus_in_use", "labels", "state_reason")
    class GpusInUseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    GPUS_IN_USE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    institution: str
    country: str
    state: _common_pb2.SiteState
    connected: bool
    inventory: _common_pb2.Inventory
    last_seen: float
    gpus_in_use: _containers.ScalarMap[str, int]
    labels: _containers.ScalarMap[str, str]
    state_reason: str
    def __init__(self, name: _Optional[str] = ..., institution: _Optional[str] = ..., country: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.SiteState, str]] = ..., connected: _Optional[bool] = ..., inventory: _Optional[_Union[_common_pb2.Inventory, _Mapping]] = ..., last_seen: _Optional[float] = ..., gpus_in_use: _Optional[_Mapping[str, int]] = ..., labels: _Optional[_Mapping[str, str]] = ..., state_reason: _Optional[str] = ...) -> None: ...

class ListSitesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSitesResponse(_message.Message):
    __slots__ = ("sites",)
    SITES_FIELD_NUMBER: _ClassVar[int]
    sites: _containers.RepeatedCompositeFieldContainer[Site]
    def __init__(self, sites: _Optional[_Iterable[_Union[Site, _Mapping]]] = ...) -> None: ...

class SiteRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ShowQuotasRequest(_message.Message):
    __slots__ = ("tree",)
    TREE_FIELD_NUMBER: _ClassVar[int]
    tree: bool
    def __init__(self, tree: _Optional[bool] = ...) -> None: ...

class QuotaRow(_message.Message):
    __slots__ = ("institution", "country", "gpu_model", "owned", "in_use", "held", "pending", "weight", "entitlement_pct", "usage_pct", "fairshare", "guarantee", "borrowed", "lent")
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    OWNED_FIELD_NUMBER: _ClassVar[int]
    IN_USE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENTITLEMENT_PCT_FIELD_NUMBER: _ClassVar[int]
    USAGE_PCT_FIELD_NUMBER: _ClassVar[int]
    FAIRSHARE_FIELD_NUMBER: _ClassVar[int]
    GUARANTEE_FIELD_NUMBER: _ClassVar[int]
    BORROWED_FIELD_NUMBER: _ClassVar[int]
    LENT_FIELD_NUMBER: _ClassVar[int]
    institution: str
    country: str
    gpu_model: str
    owned: int
    in_use: int
    held: int
    pending: int
    weight: float
    entitlement_pct: float
    usage_pct: float
    fairshare: float
    guarantee: int
    borrowed: int
    lent: int
    def __init__(self, institution: _Optional[str] = ..., country: _Optional[str] = ..., gpu_model: _Optional[str] = ..., owned: _Optional[int] = ..., in_use: _Optional[int] = ..., held: _Optional[int] = ..., pending: _Optional[int] = ..., weight: _Optional[float] = ..., entitlement_pct: _Optional[float] = ..., usage_pct: _Optional[float] = ..., fairshare: _Optional[float] = ..., guarantee: _Optional[int] = ..., borrowed: _Optional[int] = ..., lent: _Optional[int] = ...) -> None: ...

class TreeNode(_message.Message):
    __slots__ = ("level", "id", "parent", "weight", "entitlement_pct", "usage_pct", "fairshare", "fair_share_gpus", "held", "demand")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENTITLEMENT_PCT_FIELD_NUMBER: _ClassVar[int]
    USAGE_PCT_FIELD_NUMBER: _ClassVar[int]
    FAIRSHARE_FIELD_NUMBER: _ClassVar[int]
    FAIR_SHARE_GPUS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    DEMAND_FIELD_NUMBER: _ClassVar[int]
    level: str
    id: str
    parent: str
    weight: float
    entitlement_pct: float
    usage_pct: float
    fairshare: float
    fair_share_gpus: float
    held: int
    demand: int
    def __init__(self, level: _Optional[str] = ..., id: _Optional[str] = ..., parent: _Optional[str] = ..., weight: _Optional[float] = ..., entitlement_pct: _Optional[float] = ..., usage_pct: _Optional[float] = ..., fairshare: _Optional[float] = ..., fair_share_gpus: _Optional[float] = ..., held: _Optional[int] = ..., demand: _Optional[int] = ...) -> None: ...

class InstitutionQuota(_message.Message):
    __slots__ = ("institution", "country", "weight", "entitlement_pct", "usage_pct", "fairshare", "guarantee", "held", "demand", "fair_share_gpus")
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENTITLEMENT_PCT_FIELD_NUMBER: _ClassVar[int]
    USAGE_PCT_FIELD_NUMBER: _ClassVar[int]
    FAIRSHARE_FIELD_NUMBER: _ClassVar[int]
    GUARANTEE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    DEMAND_FIELD_NUMBER: _ClassVar[int]
    FAIR_SHARE_GPUS_FIELD_NUMBER: _ClassVar[int]
    institution: str
    country: str
    weight: float
    entitlement_pct: float
    usage_pct: float
    fairshare: float
    guarantee: int
    held: int
    demand: int
    fair_share_gpus: float
    def __init__(self, institution: _Optional[str] = ..., country: _Optional[str] = ..., weight: _Optional[float] = ..., entitlement_pct: _Optional[float] = ..., usage_pct: _Optional[float] = ..., fairshare: _Optional[float] = ..., guarantee: _Optional[int] = ..., held: _Optional[int] = ..., demand: _Optional[int] = ..., fair_share_gpus: _Optional[float] = ...) -> None: ...

class ShowQuotasResponse(_message.Message):
    __slots__ = ("rows", "tree", "institutions", "capacity", "share_policy", "base_grant", "base_grant_fraction")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TREE_FIELD_NUMBER: _ClassVar[int]
    INSTITUTIONS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    SHARE_POLICY_FIELD_NUMBER: _ClassVar[int]
    BASE_GRANT_FIELD_NUMBER: _ClassVar[int]
    BASE_GRANT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[QuotaRow]
    tree: _containers.RepeatedCompositeFieldContainer[TreeNode]
    institutions: _containers.RepeatedCompositeFieldContainer[InstitutionQuota]
    capacity: int
    share_policy: str
    base_grant: float
    base_grant_fraction: float
    def __init__(self, rows: _Optional[_Iterable[_Union[QuotaRow, _Mapping]]] = ..., tree: _Optional[_Iterable[_Union[TreeNode, _Mapping]]] = ..., institutions: _Optional[_Iterable[_Union[InstitutionQuota, _Mapping]]] = ..., capacity: _Optional[int] = ..., share_policy: _Optional[str] = ..., base_grant: _Optional[float] = ..., base_grant_fraction: _Optional[float] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("name", "role", "institution")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: _common_pb2.Role
    institution: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., institution: _Optional[str] = ...) -> None: ...

class ListAuditRequest(_message.Message):
    __slots__ = ("since", "who", "limit")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    WHO_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    since: float
    who: str
    limit: int
    def __init__(self, since: _Optional[float] = ..., who: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("at", "who", "role", "method", "target", "peer", "outcome", "detail")
    AT_FIELD_NUMBER: _ClassVar[int]
    WHO_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    at: float
    who: str
    role: str
    method: str
    target: str
    peer: str
    outcome: str
    detail: str
    def __init__(self, at: _Optional[float] = ..., who: _Optional[str] = ..., role: _Optional[str] = ..., method: _Optional[str] = ..., target: _Optional[str] = ..., peer: _Optional[str] = ..., outcome: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ListAuditResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...

class RevokeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RevokeResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: int
    def __init__(self, revoked: _Optional[int] = ...) -> None: ...

class RotateTokenRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ("owner",)
    OWNER_FIELD_NUMBER: _ClassVar[int]
    owner: str
    def __init__(self, owner: _Optional[str] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("id", "owner", "kind", "role", "institution", "created_at", "expires_at", "revoked", "used_at", "last_used_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    USED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner: str
    kind: str
    role: _common_pb2.Role
    institution: str
    created_at: float
    expires_at: float
    revoked: bool
    used_at: float
    last_used_at: float
    def __init__(self, id: _Optional[str] = ..., owner: _Optional[str] = ..., kind: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., institution: _Optional[str] = ..., created_at: _Optional[float] = ..., expires_at: _Optional[float] = ..., revoked: _Optional[bool] = ..., used_at: _Optional[float] = ..., last_used_at: _Optional[float] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...

class RotateTokenResponse(_message.Message):
    __slots__ = ("token", "expires_at")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: float
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[float] = ...) -> None: ...

class CarbonFigure(_message.Message):
    __slots__ = ("key", "value", "source", "year", "set_at", "fallback")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    SET_AT_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: float
    source: str
    year: int
    set_at: float
    fallback: bool
    def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ..., source: _Optional[str] = ..., year: _Optional[int] = ..., set_at: _Optional[float] = ..., fallback: _Optional[bool] = ...) -> None: ...

class SiteCarbon(_message.Message):
    __slots__ = ("site", "intensity", "pue")
    SITE_FIELD_NUMBER: _ClassVar[int]
    INTENSITY_FIELD_NUMBER: _ClassVar[int]
    PUE_FIELD_NUMBER: _ClassVar[int]
    site: str
    intensity: float
    pue: float
    def __init__(self, site: _Optional[str] = ..., intensity: _Optional[float] = ..., pue: _Optional[float] = ...) -> None: ...

class GetCarbonRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CarbonFigures(_message.Message):
    __slots__ = ("countries", "gpus", "sites", "default_pue")
    COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PUE_FIELD_NUMBER: _ClassVar[int]
    countries: _containers.RepeatedCompositeFieldContainer[CarbonFigure]
    gpus: _containers.RepeatedCompositeFieldContainer[CarbonFigure]
    sites: _containers.RepeatedCompositeFieldContainer[SiteCarbon]
    default_pue: float
    def __init__(self, countries: _Optional[_Iterable[_Union[CarbonFigure, _Mapping]]] = ..., gpus: _Optional[_Iterable[_Union[CarbonFigure, _Mapping]]] = ..., sites: _Optional[_Iterable[_Union[SiteCarbon, _Mapping]]] = ..., default_pue: _Optional[float] = ...) -> None: ...

class SetCarbonRequest(_message.Message):
    __slots__ = ("kind", "key", "intensity", "pue", "watts")
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    INTENSITY_FIELD_NUMBER: _ClassVar[int]
    PUE_FIELD_NUMBER: _ClassVar[int]
    WATTS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    key: str
    intensity: float
    pue: float
    watts: float
    def __init__(self, kind: _Optional[str] = ..., key: _Optional[str] = ..., intensity: _Optional[float] = ..., pue: _Optional[float] = ..., watts: _Optional[float] = ...) -> None: ...
