"""The site credential: what `minga site join` stores and `minga agent run` reads.

It holds a long-lived bearer token, so the file is created private (0600) in one
step; it is never written world-readable first and fixed afterwards.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import grpc

from agent.channel import broker_addresses, is_standby, open_channel
from minga.v1 import site_pb2, site_pb2_grpc
from scheduler.paths import config_dir

JOIN_TIMEOUT_SECONDS = 30.0


class CredentialError(Exception):
    """The credential file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class SiteCredential:
    broker: str                     # "host:port"
    site: str
    institution: str
    country: str
    token: str
    ca_file: str | None = None

    def __repr__(self) -> str:      # never leak the token into logs or tracebacks
        return (f"SiteCredential(broker={self.broker!r}, site={self.site!r}, "
                f"institution={self.institution!r}, country={self.country!r}, token='***')")


def default_credential_path() -> Path:
    return config_dir() / "site.json"


def save_credential(path: str | Path, cred: SiteCredential) -> Path:
    """Write `cred` as JSON, readable by the owner only, replacing any old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(cred), out, indent=2)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_credential(path: str | Path) -> SiteCredential:
    """Read a credential written by `save_credential`; CredentialError says why not."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise CredentialError(f"no site credential at {path}; run `minga site join` first") from None
    except OSError as err:
        raise CredentialError(f"cannot read site credential {path}: {err.strerror}") from None
    except ValueError as err:
        raise CredentialError(f"site credential {path} is not valid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise CredentialError(f"site credential {path} is not a JSON object")
    known = {f.name for f in fields(SiteCredential)}
    required = {f.name for f in fields(SiteCredential) if f.name != "ca_file"}
    missing = sorted(required - raw.keys())
    if missing:
        raise CredentialError(f"site credential {path} lacks {', '.join(missing)}")
    values = {k: v for k, v in raw.items() if k in known}
    if not all(isinstance(values[k], str) and values[k] for k in required):
        raise CredentialError(f"site credential {path} has empty or non-text fields")
    return SiteCredential(**values)


def join_site(broker: str, join_token: str, ca_file: str | None = None) -> SiteCredential:
    """Trade a one-time join token for the site's long-lived credential.

    Join carries no bearer token: the join token in the request is the proof.
    gRPC errors propagate; the CLI turns them into a message.
    """
    addresses = broker_addresses(broker)
    for i, address in enumerate(addresses):   # a standby refuses, naming the leader: try the next
        channel = open_channel(address, ca_file)
        try:
            resp = site_pb2_grpc.SiteServiceStub(channel).Join(
                site_pb2.JoinRequest(join_token=join_token), timeout=JOIN_TIMEOUT_SECONDS)
            break
        except grpc.RpcError as err:
            if not is_standby(err) or i == len(addresses) - 1:
                raise
        finally:
            channel.close()
    return SiteCredential(
        broker=broker, site=resp.site, institution=resp.institution,
        country=resp.country, token=resp.site_token, ca_file=ca_file,
    )
