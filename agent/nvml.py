"""Physical NVIDIA GPUs on this host, via NVML (`nvidia-ml-py`, imported as
`pynvml`). Optional: without the library or a driver the probe finds nothing.

Model names follow Ray's rule for its `accelerator_type:<model>` resource, so an
NVML name and a Ray resource name the same model ("NVIDIA H200" -> "H200").
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

# The pattern of ray._private.accelerators.nvidia_gpu (Ray 2.x), copied so the
# agent does not depend on a private module.
_NVIDIA_NAME = re.compile(r"\w+\s+((?:[A-Z]+\s+)*[A-Z0-9]*\d[A-Z0-9]*)")


@dataclass(frozen=True)
class PhysicalGpu:
    name: str  # as NVML says, e.g. "NVIDIA A100-SXM4-80GB"
    memory_mb: int

    @property
    def model(self) -> str:
        return model_from_name(self.name)


def model_from_name(name: str) -> str:
    """Ray's accelerator type for an NVIDIA product name: "Tesla T4" -> "T4"."""
    match = _NVIDIA_NAME.match(name)
    result = match.group(1).replace(" ", "-") if match else ""
    if len(result) > 1:
        return result
    cleaned = re.sub(r"^NVIDIA\s+", "", name).strip()
    return cleaned.replace(" ", "-") or "GPU"


def probe_nvml() -> list[PhysicalGpu]:
    """The GPUs NVML sees on this host; [] without pynvml, a driver or GPUs."""
    try:
        import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py ships no types
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception as err:  # noqa: BLE001 - NVMLError and friends: no driver
        log.debug("NVML unavailable: %s", err)
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            if isinstance(name, bytes):
                name = name.decode()
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            gpus.append(PhysicalGpu(name=name, memory_mb=int(memory)))
        return gpus
    except Exception as err:  # noqa: BLE001 - NVML raises its own types; any failure means no GPUs seen
        log.warning("NVML query failed: %s", err)
        return []
    finally:
        with contextlib.suppress(Exception):  # nothing to release if NVML never started
            pynvml.nvmlShutdown()
