"""Token lifecycle through a real broker and the CLI: an admin revokes a user or a
site (whose open stream is cut at once), and anyone rotates their own token."""
from __future__ import annotations

import json

import grpc
import pytest
from minga.v1 import admin_pb2, common_pb2
from typer.testing import CliRunner

from cli import config, errors
from cli.main import app
from tests.fixtures_broker import ScriptedSite, gpu_inventory, start_broker


def whoami(caller) -> str:  # type: ignore[no-untyped-def]
    return caller.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=caller.md).name


def refused(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def test_revoked_users_and_sites_are_cut_off_at_once(tmp_path) -> None:
    broker = start_broker(tmp_path)
    try:
        broker.institution("uchile", "CL")
        ana = broker.researcher("ana", "uchile")
        site_token = broker.join("uchile", "dcc")
        site = ScriptedSite(broker.address, site_token, gpu_inventory(), heartbeat_seconds=0.3)
        site.next("welcome")
        admin = ["--broker", broker.address, "--token", broker.admin.token]

        result = CliRunner().invoke(app, ["admin", "user", "revoke", "ana", "-o", "json", *admin])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"user": "ana", "revoked": 1}
        assert refused(lambda: whoami(ana)) == grpc.StatusCode.UNAUTHENTICATED

        result = CliRunner().invoke(app, ["admin", "site", "revoke", "dcc", *admin])
        assert result.exit_code == 0 and "1 credential(s) revoked" in result.stdout
        assert site.ended.wait(5)                      # its open stream ended now
        again = ScriptedSite(broker.address, site_token, gpu_inventory())
        assert again.ended.wait(5) and again.error is not None
        assert again.error.code() == grpc.StatusCode.UNAUTHENTICATED

        missing = CliRunner().invoke(app, ["admin", "user", "revoke", "nobody", *admin])
        assert missing.exit_code == errors.EXIT_NOT_FOUND
        as_researcher = broker.researcher("bob", "uchile")
        denied = CliRunner().invoke(app, ["admin", "site", "revoke", "dcc", "--broker", broker.address,
                                          "--token", as_researcher.token])
        assert denied.exit_code == errors.EXIT_AUTH
        for s in (site, again):
            s.close()
    finally:
        broker.close()


def test_rotating_a_token_replaces_it_and_the_saved_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MINGA_CONFIG_DIR", str(tmp_path / "config"))
    broker = start_broker(tmp_path)
    try:
        broker.institution("uchile", "CL")
        ana = broker.researcher("ana", "uchile")
        login = CliRunner().invoke(app, ["login", "--broker", broker.address, "--token", ana.token])
        assert login.exit_code == 0, login.output
        rotated = CliRunner().invoke(app, ["token", "rotate", "-o", "json"])
        assert rotated.exit_code == 0, rotated.output
        data = json.loads(rotated.stdout)
        assert data["config_file_updated"] is True and data["token"] != ana.token
        assert config.load_config()["token"] == data["token"]
        assert refused(lambda: whoami(ana)) == grpc.StatusCode.UNAUTHENTICATED   # the old one is dead
        assert whoami(broker.caller(data["token"])) == "ana"
        me = CliRunner().invoke(app, ["job", "list"])                             # the CLI goes on working
        assert me.exit_code == 0, me.output
        site_token = broker.join("uchile", "dcc")                                 # sites rotate too
        new = broker.caller(site_token).admin.RotateToken(admin_pb2.RotateTokenRequest(),
                                                          metadata=broker.caller(site_token).md)
        assert whoami(broker.caller(new.token)) == "dcc"
        assert refused(lambda: whoami(broker.caller(site_token))) == grpc.StatusCode.UNAUTHENTICATED
        assert common_pb2.ROLE_SITE == broker.caller(new.token).admin.WhoAmI(
            admin_pb2.WhoAmIRequest(), metadata=broker.caller(new.token).md).role
    finally:
        broker.close()
