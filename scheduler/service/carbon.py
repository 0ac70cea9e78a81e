"""Energy and emissions figures (issue 16): reading them, and an admin setting one. The
formulas and defaults are in `minga.common.carbon`; the store keeps what admins set."""

from __future__ import annotations

from minga.common import carbon
from minga.common.domain import InvalidArgument, PermissionDenied, Principal, Role
from minga.scheduler.core import Core
from minga.scheduler.store.carbon import COUNTRY, GPU, SITE, SITE_PUE
from minga.scheduler.validation import check_slug

KINDS = ("country", "site", "gpu")


def get_carbon(core: Core) -> carbon.CarbonFigures:
    return core.store.carbon.show()


def _value(field: str, value: float | None, low: float, high: float) -> float:
    if value is None:
        raise InvalidArgument(f"{field}: required")
    try:
        return carbon.check_range(field, value, low, high)
    except ValueError as err:
        raise InvalidArgument(str(err)) from None


def set_carbon(
    core: Core,
    caller: Principal,
    kind: str,
    key: str,
    intensity: float | None = None,
    pue: float | None = None,
    watts: float | None = None,
) -> carbon.CarbonFigures:
    """Check every figure given, then store them together (nothing is stored if one is bad)."""
    if caller.role is not Role.ADMIN:
        raise PermissionDenied(f"role {caller.role.value} may not set carbon figures")
    figures: list[tuple[str, str, float]] = []
    if kind == "country":
        try:
            key = carbon.check_country(key)
        except ValueError as err:
            raise InvalidArgument(str(err)) from None
        figures.append((COUNTRY, key, _value("intensity", intensity, 0.0, carbon.MAX_INTENSITY)))
    elif kind == "site":
        check_slug("site", key)
        if intensity is None and pue is None:
            raise InvalidArgument("site: give an intensity, a pue or both")
        if intensity is not None:
            figures.append((SITE, key, _value("intensity", intensity, 0.0, carbon.MAX_INTENSITY)))
        if pue is not None:
            figures.append((SITE_PUE, key, _value("pue", pue, 1.0, carbon.MAX_PUE)))
    elif kind == "gpu":
        model = carbon.model_key(key)
        if not model or len(model) > 64 or not all(c.isalnum() or c in "-." for c in model):
            raise InvalidArgument(f"model: {key[:64]!r} is not a GPU model name")
        figures.append((GPU, model, _value("watts", watts, 1.0, carbon.MAX_WATTS)))
    else:
        raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}; got {kind[:32]!r}")
    core.store.carbon.set(figures, caller.name, core.clock.now())
    return core.store.carbon.show()
