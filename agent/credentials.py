"""The site credential: what `minga site join` stores and `minga agent run` reads.

On a broker with a federation CA (`minga broker init`) the credential is a client
certificate: the site's key is made here and never leaves the machine, the broker
signs a CSR for it, and key and certificate live together in one private PEM file
(so a renewal replaces both in one rename). On a broker without a CA it is a
long-lived bearer token. Either way the files are created private (0600) in one
step; they are never written world-readable first and fixed afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import grpc

from minga.common import pki
from minga.common.channel import broker_addresses, is_standby, open_channel
from minga.common.paths import config_dir
from minga.v1 import site_pb2, site_pb2_grpc

JOIN_TIMEOUT_SECONDS = 30.0


class CredentialError(Exception):
    """The credential file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class SiteCredential:
    broker: str  # "host:port"
    site: str
    institution: str
    country: str
    token: str  # "": the site holds a certificate instead
    ca_file: str | None = None  # root of the broker's TLS certificate
    certificate_file: str | None = None  # the site's key and client certificate (PEM, 0600)

    def __repr__(self) -> str:  # never leak the token into logs or tracebacks
        return (
            f"SiteCredential(broker={self.broker!r}, site={self.site!r}, "
            f"institution={self.institution!r}, country={self.country!r}, token='***', "
            f"certificate_file={self.certificate_file!r})"
        )


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
    required = {"broker", "site", "institution", "country"}
    missing = sorted(required - raw.keys())
    if missing:
        raise CredentialError(f"site credential {path} lacks {', '.join(missing)}")
    values = {k: v for k, v in raw.items() if k in known}
    if not all(isinstance(values[k], str) and values[k] for k in required):
        raise CredentialError(f"site credential {path} has empty or non-text fields")
    if not (isinstance(values.get("token"), str) and values["token"]) and not values.get("certificate_file"):
        raise CredentialError(f"site credential {path} holds neither a token nor a certificate file")
    values.setdefault("token", "")
    return SiteCredential(**values)


def join_site(
    broker: str, join_token: str, ca_file: str | None = None, certificate_file: str | Path | None = None
) -> SiteCredential:
    """Trade a one-time join token for the site's credential.

    Join carries no bearer token: the join token in the request is the proof. The
    request also carries a CSR for a key made here; a broker with a federation CA
    answers with a certificate, which is saved with the key to `certificate_file`
    (and the federation CA next to it), and the credential then names the site port.
    gRPC errors propagate; the CLI turns them into a message.
    """
    key = pki.new_key()  # no file to keep it in: no CSR, and a broker with a CA refuses before spending the token
    csr = pki.site_csr(key, "minga-site") if certificate_file is not None else b""
    request = site_pb2.JoinRequest(join_token=join_token, csr=csr)
    addresses = broker_addresses(broker)
    for i, address in enumerate(addresses):  # a standby refuses, naming the leader: try the next
        channel = open_channel(address, ca_file)
        try:
            resp = site_pb2_grpc.SiteServiceStub(channel).Join(request, timeout=JOIN_TIMEOUT_SECONDS)
            break
        except grpc.RpcError as err:
            if not is_standby(err) or i == len(addresses) - 1:
                raise
        finally:
            channel.close()
    if not resp.certificate:
        return SiteCredential(
            broker=broker,
            site=resp.site,
            institution=resp.institution,
            country=resp.country,
            token=resp.site_token,
            ca_file=ca_file,
        )
    assert certificate_file is not None  # a broker signs only the CSR it was sent
    bundle = Path(certificate_file)
    save_certificate(bundle, pki.key_pem(key), resp.certificate)
    federation_ca = bundle.with_name(f"{bundle.stem}-ca.crt")
    federation_ca.write_bytes(resp.ca_certificate)
    return SiteCredential(
        broker=resp.site_endpoint,
        site=resp.site,
        institution=resp.institution,
        country=resp.country,
        token="",
        ca_file=str(federation_ca),
        certificate_file=str(bundle),
    )


def certificate_expiry(cred: SiteCredential) -> dt.datetime | None:
    """When the site's certificate expires (None: the site holds a token)."""
    if not cred.certificate_file:
        return None
    try:
        _, cert = pki.load_key_and_cert(Path(cred.certificate_file).read_bytes())
    except OSError as err:
        raise CredentialError(f"cannot read the site certificate {cred.certificate_file}: {err.strerror}") from None
    except ValueError as err:
        raise CredentialError(f"the site certificate {cred.certificate_file} is damaged: {err}") from None
    return cert.not_valid_after_utc


def save_certificate(path: Path, key_pem: bytes, cert_pem: bytes) -> None:
    """Key and certificate in one private file, replaced in one rename."""
    pki.write_private(path, key_pem + cert_pem)
