"""The federation CA: server and site certificates, what identity a site certificate
carries, and a real mutual-TLS handshake through gRPC with them."""

from __future__ import annotations

import datetime as dt
import stat
from concurrent import futures

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from minga.common.domain import InvalidArgument
from minga.common.pki import (
    Authority,
    SiteIdentity,
    create_ca,
    issue_server_cert,
    key_pem,
    new_key,
    pem,
    sign_site_csr,
    site_csr,
    site_identity,
    write_private,
)

DCC = SiteIdentity(site="dcc", institution="uchile")


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_the_server_certificate_names_every_san_and_is_signed_by_the_ca() -> None:
    ca = create_ca()
    _, cert = issue_server_cert(ca, ["broker.example.org", "127.0.0.1"])
    cert.verify_directly_issued_by(ca.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["broker.example.org"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    with pytest.raises(InvalidArgument, match="--san"):
        issue_server_cert(ca, [])


def test_a_site_certificate_names_what_the_broker_knows_not_what_the_csr_claims() -> None:
    ca = create_ca()
    site_key = new_key()  # made at the site, never sent
    cert = sign_site_csr(ca, site_csr(site_key, "some-other-site"), DCC, country="CL")
    assert site_identity(cert, ca.cert) == DCC
    assert _public(cert.public_key()) == _public(site_key.public_key())
    assert cert.subject.rfc4514_string() == "C=CL,O=uchile,CN=dcc"
    lasts = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=30) <= lasts <= dt.timedelta(days=30, minutes=6)


def test_foreign_expired_and_malformed_certificates_are_refused() -> None:
    ca, other = create_ca(), create_ca()
    cert = sign_site_csr(ca, site_csr(new_key(), "dcc"), DCC)
    with pytest.raises(InvalidArgument, match="not issued by this federation"):
        site_identity(cert, other.cert)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    with pytest.raises(InvalidArgument, match="expired"):
        site_identity(cert, ca.cert, now=later)
    _, server = issue_server_cert(ca, ["localhost"])
    with pytest.raises(InvalidArgument, match="names no site"):
        site_identity(server, ca.cert)
    with pytest.raises(InvalidArgument, match="not a PEM"):
        sign_site_csr(ca, b"-----BEGIN CERTIFICATE REQUEST-----\ngarbage\n", DCC)
    with pytest.raises(InvalidArgument, match="limit"):
        sign_site_csr(ca, b"x" * 20_000, DCC)


def test_secrets_are_written_owner_only(tmp_path) -> None:
    path = write_private(tmp_path / "ca" / "ca.key", key_pem(new_key()))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def _peer_identity(ca: x509.Certificate) -> grpc.GenericRpcHandler:
    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        presented = context.auth_context().get("x509_pem_cert", [b""])[0]
        identity = site_identity(x509.load_pem_x509_certificate(presented), ca)
        return f"{identity.institution}/{identity.site}".encode()

    return grpc.method_handlers_generic_handler("test.Who", {"Am": grpc.unary_unary_rpc_method_handler(handler)})


def test_mutual_tls_through_grpc_with_these_certificates() -> None:
    ca, other = create_ca(), create_ca()
    server_key, server_cert = issue_server_cert(ca, ["localhost", "127.0.0.1"])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers([_peer_identity(ca.cert)])
    creds = grpc.ssl_server_credentials(
        [(key_pem(server_key), pem(server_cert))], root_certificates=ca.pem, require_client_auth=True
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:

        def ask(authority: Authority, site_id: SiteIdentity) -> bytes:
            key = new_key()
            cert = sign_site_csr(authority, site_csr(key, site_id.site), site_id)
            channel = grpc.secure_channel(
                f"127.0.0.1:{port}",
                grpc.ssl_channel_credentials(
                    root_certificates=ca.pem, private_key=key_pem(key), certificate_chain=pem(cert)
                ),
            )
            with channel:
                return channel.unary_unary("/test.Who/Am")(b"", timeout=10)

        assert ask(ca, DCC) == b"uchile/dcc"
        with pytest.raises(grpc.RpcError) as refused:  # a certificate from another CA
            ask(other, DCC)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)
