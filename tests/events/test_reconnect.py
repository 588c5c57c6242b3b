"""The store's writes across a lost database: appends and catch-ups through a TCP relay to the real
PostgreSQL that is cut (every connection reset, new ones refused) for a few seconds, as a restart does from
a client's side, without restarting the server the rest of the suite shares. Every event is stored once,
nothing is lost, and an outage longer than the wait raises the driver's own error."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from baton.events import reconnect, schema
from baton.events.event import Event
from baton.events.store import EventStore, engine_for
from tests.threads import run_threads


class Relay:
    """127.0.0.1:<port> relayed to PostgreSQL; ``cut()`` resets every connection and refuses new ones
    until ``mend()``."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.failures: list[BaseException] = []
        self.mend()

    def mend(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, []
        listener.close()
        for s in sockets:  # as a server going down closes its connections (a close alone would not wake
            with contextlib.suppress(OSError):  # the relay's reader: the client would wait forever)
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection(self.upstream)
            with self._lock:
                if self._listener is not listener:
                    client.close(), server.close()
                    return
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass  # cut, or the other side closed
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):  # the other side closed it already
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relayed(pg_url):
    url = make_url(pg_url)
    relay = Relay((url.host, url.port or 5432))
    store = EventStore(engine_for(url.set(host="127.0.0.1", port=relay.port).render_as_string(False)))
    with store.engine.begin() as conn:
        conn.execute(schema.events.delete().where(schema.events.c.run_id.like("relayed%")))
    yield relay, store
    relay.cut()
    store.engine.dispose()


def _event(run: str, n: int) -> Event:
    return Event(type="run.started", run_id=run, workflow="w", discriminator=str(n))


def _stored(store: EventStore, run: str) -> list[str]:
    with store.engine.connect() as conn:
        e = schema.events.c
        return list(conn.scalars(select(e.idempotency_key).where(e.run_id == run).order_by(e.seq)))


def test_appends_across_a_cut_all_land_once(relayed, caplog):
    relay, store = relayed
    store.append([_event("relayed_a", 0)])  # the pool holds a connection the cut will reset
    mended = threading.Event()
    appended: list[int] = []

    def writer() -> None:
        for n in range(1, 41):
            appended.extend(store.append([_event("relayed_a", n)]))
            if n == 10:
                relay.cut()
                threading.Timer(3.0, lambda: (relay.mend(), mended.set())).start()

    with caplog.at_level(logging.WARNING, logger="baton.events.reconnect"):
        run_threads([writer], timeout=120)
    assert mended.is_set()
    keys = _stored(store, "relayed_a")
    assert len(keys) == len(set(keys)) == 41, "every append stored, none twice"
    assert len(appended) == 40
    waits = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert waits and waits[0].startswith("append of 1 event(s): the store's database connection was lost (")
    assert "INSERT" not in " ".join(waits), "the statement and its payload are never logged"


def test_concurrent_appends_and_catch_ups_across_a_cut(relayed):
    relay, store = relayed
    store.catch_up()

    def writer(i: int) -> None:
        for n in range(15):
            store.append([_event(f"relayed_{i}", n)])

    def cutter() -> None:
        relay.cut()
        threading.Timer(2.0, relay.mend).start()

    def catcher() -> None:
        for _ in range(10):
            store.catch_up()

    run_threads([*(lambda i=i: writer(i) for i in range(3)), cutter, catcher], timeout=180)
    store.catch_up()
    for i in range(3):
        assert len(_stored(store, f"relayed_{i}")) == 15
    with store.engine.connect() as conn:
        runs = conn.scalar(
            select(func.count())
            .select_from(schema.run_summary)
            .where(schema.run_summary.c.run_id.like("relayed_%"))
        )
    assert runs == 3, "the pages' projection caught up with every run"


def test_an_outage_longer_than_the_wait_raises_the_drivers_error(relayed, monkeypatch, caplog):
    relay, store = relayed
    monkeypatch.setattr(reconnect, "WAIT_S", 1.0)
    relay.cut()
    with caplog.at_level(logging.WARNING, logger="baton.events.reconnect"), pytest.raises(OperationalError):
        store.append([_event("relayed_b", 0)])
    assert "giving up" in caplog.records[-1].getMessage()
    relay.mend()
    store.append([_event("relayed_b", 0)])
    assert len(_stored(store, "relayed_b")) == 1


def test_a_refused_statement_is_not_retried(relayed, caplog):
    _, store = relayed
    with (
        caplog.at_level(logging.WARNING, logger="baton.events.reconnect"),
        store.engine.connect() as conn,
        pytest.raises(ProgrammingError, match="no_such_table") as refused,
    ):
        reconnect.retrying(lambda: conn.exec_driver_sql("SELECT * FROM no_such_table"), "a read")
    assert "no_such_table" in str(refused.value)
    assert not reconnect.lost(refused.value)
    assert [r for r in caplog.records if "trying again" in r.getMessage()] == []
