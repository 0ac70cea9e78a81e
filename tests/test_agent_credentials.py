"""The site credential file: private from the first byte, clear errors, Join."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import grpc
import pytest

from minga.agent.credentials import (
    CredentialError,
    SiteCredential,
    config_dir,
    default_credential_path,
    join_site,
    load_credential,
    save_credential,
)
from minga.v1 import site_pb2
from tests.fakes.fake_broker import FakeBroker

CRED = SiteCredential(broker="127.0.0.1:1", site="uchile-dcc", institution="uchile", country="CL", token="s3cret-token")


def test_config_dir_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINGA_CONFIG_DIR", str(tmp_path))
    assert config_dir() == tmp_path
    assert default_credential_path() == tmp_path / "site.json"


def test_saved_credential_is_private_and_round_trips(tmp_path: Path) -> None:
    os.umask(0o022)
    path = save_credential(tmp_path / "sub" / "site.json", CRED)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_credential(path) == CRED
    save_credential(path, CRED)  # overwriting keeps it private
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["site.json"]


def test_token_is_not_in_the_repr() -> None:
    assert "s3cret" not in repr(CRED)


def test_missing_credential_says_to_join(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="minga site join"):
        load_credential(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "content,match",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"broker": "b", "site": "s"}), "lacks"),
        (json.dumps({"broker": "b", "site": "s", "institution": "i", "country": "", "token": "t"}), "empty"),
    ],
)
def test_malformed_credential_is_reported(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "site.json"
    path.write_text(content)
    with pytest.raises(CredentialError, match=match):
        load_credential(path)


def test_join_trades_the_join_token_for_a_credential() -> None:
    broker = FakeBroker().start()
    try:
        broker.join_tokens["join-1"] = site_pb2.JoinResponse(
            site="uchile-dcc", institution="uchile", country="CL", site_token="long-lived"
        )
        cred = join_site(broker.address, "join-1")
        assert cred == SiteCredential(
            broker=broker.address, site="uchile-dcc", institution="uchile", country="CL", token="long-lived"
        )
        with pytest.raises(grpc.RpcError) as err:
            join_site(broker.address, "join-1")  # one-time
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        broker.stop()
