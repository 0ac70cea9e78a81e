"""The site renews its own client certificate, well before it expires.

A site certificate lasts 30 days by default, so a stolen or forgotten one dies by
itself; the price is that a site must renew, and nobody should have to remember
to. When a third of the certificate's life is left, the agent makes a new key,
sends a CSR over the site port (authenticated by the current certificate), and
replaces key and certificate in one rename. The next channel uses the new pair;
the broker keeps the old certificate valid until it expires, so dying between the
broker's answer and the rename costs nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import grpc
from cryptography import x509

from minga.common import pki
from minga.common.channel import open_channel
from minga.v1 import site_pb2, site_pb2_grpc

log = logging.getLogger(__name__)

RENEW_WHEN_LEFT = 1 / 3  # of the certificate's lifetime
RENEW_TIMEOUT_SECONDS = 30.0


def renewal_due(bundle: bytes, now: dt.datetime) -> bool:
    """Whether the certificate in `bundle` has less than a third of its life left.
    Its life starts at issue: not_before is back-dated by the CA's clock-skew margin."""
    cert = x509.load_pem_x509_certificate(pki.split_bundle(bundle)[1])
    issued = cert.not_valid_before_utc + pki.CLOCK_SKEW
    lifetime = cert.not_valid_after_utc - issued
    return cert.not_valid_after_utc - now < lifetime * RENEW_WHEN_LEFT


def renew(address: str, ca_file: str, certificate_file: str) -> dt.datetime:
    """Renew the certificate in `certificate_file` now; returns its new expiry.
    gRPC errors propagate (the caller retries at its next check)."""
    key = pki.new_key()
    channel = open_channel(address, ca_file, certificate_file)
    try:
        resp = site_pb2_grpc.SiteServiceStub(channel).RenewCertificate(
            site_pb2.RenewCertificateRequest(csr=pki.site_csr(key, "minga-site")), timeout=RENEW_TIMEOUT_SECONDS
        )
    finally:
        channel.close()
    cert = x509.load_pem_x509_certificate(resp.certificate)
    pki.write_private(Path(certificate_file), pki.key_pem(key) + resp.certificate)
    return cert.not_valid_after_utc


def renew_if_due(address: str, ca_file: str, certificate_file: str, now: dt.datetime) -> bool:
    """One check of the renewal loop; True if the certificate was renewed."""
    try:
        if not renewal_due(Path(certificate_file).read_bytes(), now):
            return False
    except (OSError, ValueError) as err:
        log.error("cannot read this site's certificate %s: %s", certificate_file, err)
        return False
    try:
        expires = renew(address, ca_file, certificate_file)
    except grpc.RpcError as err:
        log.warning("certificate renewal failed (%s: %s); retrying later", err.code().name, err.details())
        return False
    log.info("renewed this site's certificate; it is valid until %s", f"{expires:%Y-%m-%d %H:%M} UTC")
    return True
