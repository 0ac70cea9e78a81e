"""SQLite writers of one broker take turns on a lock of the process (store/db.py), not in
SQLite's polling busy handler: a turn is held from BEGIN IMMEDIATE to the end of the
transaction, whichever way it ends, and a second writer waits for it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from minga.scheduler.store.db import make_engines


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    write, read = make_engines(f"sqlite:///{tmp_path / 'turns.db'}")
    with write.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield write, read
    write.dispose()
    read.dispose()


def test_a_turn_is_held_for_the_transaction_and_given_back_however_it_ends(engines) -> None:
    write, read = engines
    turns = write.write_turns
    assert not turns._lock.locked()
    with write.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert turns._lock.locked()
    assert not turns._lock.locked()  # committed
    with pytest.raises(RuntimeError), write.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
        raise RuntimeError("the block failed")
    assert not turns._lock.locked()  # rolled back
    conn = write.connect()
    conn.execute(text("INSERT INTO t VALUES (3)"))
    assert turns._lock.locked()
    conn.close()  # ended by returning to the pool
    assert not turns._lock.locked()
    with read.connect() as r:
        assert r.execute(text("SELECT x FROM t")).scalars().all() == [1]
        assert not turns._lock.locked()  # readers take no turn


def test_a_second_writer_waits_for_the_first_ones_turn(engines) -> None:
    write, _ = engines
    turns = write.write_turns
    order: list[str] = []
    began = threading.Event()

    def second() -> None:
        began.set()
        with write.begin() as conn:
            order.append("second began")
            conn.execute(text("INSERT INTO t VALUES (2)"))

    with write.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        thread = threading.Thread(target=second)
        thread.start()
        assert began.wait(10)
        thread.join(0.2)
        assert thread.is_alive() and order == []  # waiting for the turn
        order.append("first ends")
    thread.join(10)
    assert order == ["first ends", "second began"]
    assert not turns._lock.locked()
