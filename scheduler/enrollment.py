"""Site enrollment on a broker with a federation CA (`minga broker init`).

A site proves itself once with a one-time join token and a CSR for a key it made
itself; from then on its client certificate is its identity, checked by the TLS
handshake on the site port and then against the broker's credential table, where
each certificate is a row named by its serial number. That table is what makes
`minga admin site revoke` (and a re-join) kill certificates that are still in date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from minga.common import pki
from minga.common.domain import InvalidArgument, Principal, Unauthenticated

# A credential key (here a certificate's serial) -> the live principal it stands for.
CredentialLookup = Callable[[str, float], Principal | None]


@dataclass(frozen=True)
class Enrollment:
    """How this broker certifies sites: its CA, a certificate's lifetime, and where
    sites connect with mutual TLS (told to them when they join)."""

    ca: pki.Authority
    site_endpoint: str
    lifetime: dt.timedelta = dt.timedelta(days=pki.SITE_CERT_DAYS)

    def new_serial(self) -> tuple[int, str]:
        """A serial for the next certificate, and its key in the credential table. The row
        is written before the certificate is signed, so no certificate exists unrecorded."""
        serial = x509.random_serial_number()
        return serial, pki.serial_key(serial)

    def expires_at(self, now: float) -> float:
        return now + self.lifetime.total_seconds()

    def certify(self, csr_pem: bytes, site: str, institution: str, country: str, now: float, serial: int) -> bytes:
        cert = pki.sign_site_csr(
            self.ca,
            csr_pem,
            pki.SiteIdentity(site=site, institution=institution),
            country,
            _utc(now),
            self.lifetime,
            serial,
        )
        return pki.pem(cert)

    def identify(self, cert_pem: bytes, now: float) -> tuple[pki.SiteIdentity, str]:
        """The site a presented certificate names, and its credential key. gRPC already
        verified the chain during the handshake; this checks it again (our CA, in date,
        a site certificate), so no misconfigured port can let a stranger through."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            return pki.site_identity(cert, self.ca.cert, _utc(now)), pki.serial_key(cert.serial_number)
        except (ValueError, InvalidArgument) as exc:
            raise Unauthenticated(f"client certificate refused: {exc}") from exc


def certificate_principal(
    enrollment: Enrollment, cert_pem: bytes | None, now: float, lookup: CredentialLookup
) -> Principal:
    """The site calling with `cert_pem`, if that certificate is still one of its live
    credentials (not revoked, not replaced by a re-join, not expired)."""
    if not cert_pem:
        raise Unauthenticated("the site port needs a client certificate: join with `minga site join`")
    identity, key = enrollment.identify(cert_pem, now)
    principal = lookup(key, now)
    if principal is None or principal.site != identity.site or principal.institution != identity.institution:
        raise Unauthenticated(
            f"the certificate of site {identity.site!r} is revoked or replaced: "
            "ask the admin for a join token and join again"
        )
    return principal


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)
