"""Token lifecycle through a real broker and the CLI: an admin revokes a user or a
site (whose open stream is cut at once), anyone rotates their own token, user tokens
expire, tokens are listed without their secrets, and stored only as keyed hashes."""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Callable

import grpc
import pytest
from typer.testing import CliRunner

from minga.cli import config, errors
from minga.cli.main import app
from minga.common.clock import FakeClock
from minga.common.domain import FailedPrecondition, Role, Unauthenticated
from minga.scheduler.auth import KEYED_PREFIX, TokenHasher, legacy_hash
from minga.scheduler.server import Broker, BrokerConfig
from minga.scheduler.store import Store
from minga.scheduler.store.accounts import Institution, User
from minga.v1 import admin_pb2, common_pb2
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory, start_broker
from tests.test_store import store, store_url  # noqa: F401 - the store fixtures, SQLite and PostgreSQL


def whoami(caller: Caller) -> str:
    return caller.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=caller.md).name


def refused(call: Callable[[], object]) -> grpc.StatusCode:
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
        assert site.ended.wait(5)  # its open stream ended now
        again = ScriptedSite(broker.address, site_token, gpu_inventory())
        assert again.ended.wait(5) and again.error is not None
        assert again.error.code() == grpc.StatusCode.UNAUTHENTICATED

        missing = CliRunner().invoke(app, ["admin", "user", "revoke", "nobody", *admin])
        assert missing.exit_code == errors.EXIT_NOT_FOUND
        as_researcher = broker.researcher("bob", "uchile")
        denied = CliRunner().invoke(
            app, ["admin", "site", "revoke", "dcc", "--broker", broker.address, "--token", as_researcher.token]
        )
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
        assert refused(lambda: whoami(ana)) == grpc.StatusCode.UNAUTHENTICATED  # the old one is dead
        assert whoami(broker.caller(data["token"])) == "ana"
        me = CliRunner().invoke(app, ["job", "list"])  # the CLI goes on working
        assert me.exit_code == 0, me.output
        site_token = broker.join("uchile", "dcc")  # sites rotate too
        new = broker.caller(site_token).admin.RotateToken(
            admin_pb2.RotateTokenRequest(), metadata=broker.caller(site_token).md
        )
        assert whoami(broker.caller(new.token)) == "dcc"
        assert refused(lambda: whoami(broker.caller(site_token))) == grpc.StatusCode.UNAUTHENTICATED
        assert (
            broker.caller(new.token).admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=broker.caller(new.token).md).role
            == common_pb2.ROLE_SITE
        )
    finally:
        broker.close()


# -- expiry, listing, keyed hashes (issue 5) --------------------------------------------

DAY = 86400.0


def add_user(
    broker: RunningBroker,
    name: str,
    institution: str,
    role: int = common_pb2.ROLE_RESEARCHER,
    ttl: int = 0,
) -> admin_pb2.AddUserResponse:
    a = broker.admin
    return a.admin.AddUser(
        admin_pb2.AddUserRequest(name=name, institution=institution, role=role, ttl_seconds=ttl), metadata=a.md
    )


def test_user_tokens_expire_and_rotation_renews_them(tmp_path) -> None:
    clock = FakeClock()
    broker = start_broker(tmp_path, clock=clock)
    try:
        broker.institution("uchile", "CL")
        ana = add_user(broker, "ana", "uchile")
        assert ana.expires_at == pytest.approx(clock.now() + 90 * DAY)  # the default
        short = add_user(broker, "bob", "uchile", ttl=3600)
        assert short.expires_at == pytest.approx(clock.now() + 3600)
        clock.advance(3600)
        with pytest.raises(grpc.RpcError) as err:
            whoami(broker.caller(short.token))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "expired" in (err.value.details() or "") and "bob" not in (err.value.details() or "")
        clock.advance(80 * DAY)  # ana's has 10 days left
        me = broker.caller(ana.token)
        new = me.admin.RotateToken(admin_pb2.RotateTokenRequest(), metadata=me.md)
        assert new.expires_at == pytest.approx(clock.now() + 90 * DAY)  # a fresh 90 days
        clock.advance(30 * DAY)
        assert whoami(broker.caller(new.token)) == "ana"
        assert whoami(broker.admin) == "admin"  # the bootstrap admin's never expires
        bad = add_user_code(broker, "eve", "uchile", ttl=-5)
        assert bad == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        broker.close()


def add_user_code(broker: RunningBroker, name: str, institution: str, ttl: int) -> grpc.StatusCode:
    return refused(lambda: add_user(broker, name, institution, ttl=ttl))


def test_tokens_are_stored_as_keyed_hashes_and_listed_without_secrets(tmp_path) -> None:
    broker = start_broker(tmp_path)
    try:
        broker.institution("uchile", "CL")
        ana = add_user(broker, "ana", "uchile")
        join = broker.join_token("uchile", "dcc")
        key_file = tmp_path / "token-key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        with sqlite3.connect(tmp_path / "broker.db") as conn:
            hashes = [h for (h,) in conn.execute("SELECT hash FROM tokens")]
        assert hashes and all(h.startswith(KEYED_PREFIX) for h in hashes)
        for secret in (ana.token, join):
            assert legacy_hash(secret) not in hashes and not any(secret in h for h in hashes)
        me = broker.caller(ana.token)
        mine = me.admin.ListTokens(admin_pb2.ListTokensRequest(), metadata=me.md).tokens
        assert [(t.owner, t.kind, t.revoked) for t in mine] == [("ana", "user", False)]
        everything = broker.admin.admin.ListTokens(admin_pb2.ListTokensRequest(), metadata=broker.admin.md)
        blob = everything.SerializeToString()
        assert {t.kind for t in everything.tokens} == {"user", "join"}
        for secret in [ana.token, join, *hashes]:
            assert secret.encode() not in blob and secret.removeprefix(KEYED_PREFIX).encode() not in blob

        result = CliRunner().invoke(
            app,
            [
                "admin",
                "token",
                "list",
                "--user",
                "ana",
                "-o",
                "json",
                "--broker",
                broker.address,
                "--token",
                broker.admin.token,
            ],
        )
        assert result.exit_code == 0, result.output
        listed = json.loads(result.stdout)
        assert [(t["owner"], t["role"], t["state"]) for t in listed] == [("ana", "researcher", "live")]
        assert listed[0]["expires_at"] and ana.token not in result.stdout
        own = CliRunner().invoke(app, ["token", "list", "--broker", broker.address, "--token", ana.token])
        assert own.exit_code == 0 and "ana" in own.stdout and ana.token not in own.stdout
    finally:
        broker.close()


def test_a_legacy_sha256_token_works_once_and_is_rehashed(tmp_path) -> None:
    """Stores from before keyed hashes hold plain SHA-256: such a token still works, and
    its row is re-keyed on that first use."""
    broker = start_broker(tmp_path)
    broker.institution("uchile", "CL")
    broker.close()
    old_token = "mgu_" + "legacy" * 7
    with sqlite3.connect(tmp_path / "broker.db") as conn:
        conn.execute(
            "INSERT INTO users (name, institution, role, created_at) VALUES ('old', 'uchile', 'researcher', 1)"
        )
        conn.execute(
            "INSERT INTO tokens (hash, kind, subject, role, institution, country, expires_at, used_at, "
            "revoked, created_at, last_used_at) VALUES (?, 'user', 'old', 'researcher', 'uchile', '', 0, "
            "0, 0, 1, 0)",
            (legacy_hash(old_token),),
        )
    broker = start_broker(tmp_path)
    try:
        assert whoami(broker.caller(old_token)) == "old"
        with sqlite3.connect(tmp_path / "broker.db") as conn:
            rows = [h for (h,) in conn.execute("SELECT hash FROM tokens WHERE subject = 'old'")]
        assert len(rows) == 1 and rows[0].startswith(KEYED_PREFIX)
        assert whoami(broker.caller(old_token)) == "old"  # found by its keyed hash now
    finally:
        broker.close()


def test_a_broker_with_another_token_key_refuses_to_start(tmp_path) -> None:
    first = start_broker(tmp_path)
    try:
        other_key = tmp_path / "elsewhere" / "token-key"
        broker = Broker(
            BrokerConfig(
                listen="127.0.0.1:0",
                db_url=first.db_url,
                token_key_file=other_key,
                admin_token_file=tmp_path / "admin-token",
            )
        )
        with pytest.raises(FailedPrecondition, match="another token key"):
            broker.start()
        same = Broker(
            BrokerConfig(listen="127.0.0.1:0", db_url=first.db_url, admin_token_file=tmp_path / "admin-token")
        )
        same.start()  # the default key file is next to the admin token: the same one
        same.stop(grace=0.1)
    finally:
        first.close()


def test_institution_admins_add_their_own_users_through_the_cli(tmp_path) -> None:
    broker = start_broker(tmp_path)
    try:
        broker.institution("uchile", "CL")
        broker.institution("unam", "MX")
        admin = ["--broker", broker.address, "--token", broker.admin.token]
        made = CliRunner().invoke(
            app,
            [
                "admin",
                "user",
                "add",
                "boss",
                "--institution",
                "uchile",
                "--role",
                "institution-admin",
                "--expires",
                "30d",
                "-o",
                "json",
                *admin,
            ],
        )
        assert made.exit_code == 0, made.output
        boss = json.loads(made.stdout)
        assert boss["role"] == "institution-admin" and boss["expires_at"]
        as_boss = ["--broker", broker.address, "--token", boss["token"]]
        ok = CliRunner().invoke(app, ["admin", "user", "add", "ana", "--institution", "uchile", *as_boss])
        assert ok.exit_code == 0, ok.output
        theirs = CliRunner().invoke(app, ["admin", "user", "add", "spy", "--institution", "unam", *as_boss])
        assert theirs.exit_code == errors.EXIT_AUTH
        escalate = CliRunner().invoke(
            app, ["admin", "user", "add", "root2", "--institution", "uchile", "--role", "admin", *as_boss]
        )
        assert escalate.exit_code == errors.EXIT_AUTH
        bad = CliRunner().invoke(
            app, ["admin", "user", "add", "x", "--institution", "uchile", "--expires", "soon", *admin]
        )
        assert bad.exit_code == 2 and "--expires" in bad.output
        listed = CliRunner().invoke(app, ["admin", "user", "list", "-o", "json", *as_boss])
        assert {u["name"] for u in json.loads(listed.stdout)} == {"boss", "ana"}
    finally:
        broker.close()


# -- the accounts store, on SQLite and PostgreSQL ------------------------------------------

NOW = 1_700_000_000.0


def test_store_keys_rekeys_lists_and_finds_owners(store: Store) -> None:
    accounts = store.accounts
    accounts.use_key(TokenHasher(b"k" * 32))
    accounts.use_key(TokenHasher(b"k" * 32))  # the same key again: fine
    with pytest.raises(FailedPrecondition, match="another token key"):
        accounts.use_key(TokenHasher(b"x" * 32))
    store.accounts.add_institution(Institution("uchile", "U. de Chile", "CL"), NOW)
    accounts.add_user(User("ana", "uchile", Role.RESEARCHER, NOW), accounts.hash("tok-ana"), NOW + 100)
    accounts.add_user(User("old", "uchile", Role.RESEARCHER, NOW), legacy_hash("tok-old"))  # pre-0004 row
    assert accounts.principal_for_token("tok-ana", NOW).name == "ana"
    with pytest.raises(Unauthenticated, match="expired"):
        accounts.principal_for_token("tok-ana", NOW + 100)
    assert accounts.principal_for("anything", NOW) is None
    assert accounts.principal_for_token("tok-old", NOW).name == "old"  # accepted, and re-keyed
    assert accounts.principal_for(legacy_hash("tok-old"), NOW) is None
    assert accounts.principal_for(accounts.hash("tok-old"), NOW).name == "old"
    listed = accounts.list_tokens(institution="uchile")
    assert {(t.owner, t.expires_at) for t in listed} == {("ana", NOW + 100), ("old", 0.0)}
    assert accounts.list_tokens(owner="ana", institution="unam") == []
    assert all(len(t.id) == 12 and "tok-" not in t.id for t in listed)
    assert accounts.owner_of("user", "ana") == "uchile" and accounts.owner_of("user", "nobody") is None
    assert accounts.owner_of("owner", "ana") == "uchile" and accounts.owner_of("institution", "unam") is None
    assert accounts.owner_of("project", "uchile/default") == "uchile"
    assert [u.name for u in accounts.list_users("uchile")] == ["ana", "old"] and accounts.list_users("unam") == []
