"""The relay itself, in front of a small echo server: it passes bytes through, refuses new
connections and closes open ones when cut (and listens again when restored), holds or delays
what clients send, holds upstream's answers while passing requests on, delivers what a client
sent before it went away, and stops cleanly."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.processes import eventually
from tests.fixtures.relay import Relay
from tests.fixtures.servers import serving


class Echo(socketserver.ThreadingTCPServer):
    """Echoes what it receives, and remembers all of it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.received = bytearray()
        self.lock = threading.Lock()
        echo = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                while data := self.request.recv(65536):
                    with echo.lock:
                        echo.received += data
                    self.request.sendall(data)

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = int(self.server_address[1])

    def got(self) -> bytes:
        with self.lock:
            return bytes(self.received)


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    with serving(server):
        yield server


@pytest.fixture
def relay(echo: Echo) -> Iterator[Relay]:
    with Relay(echo.port) as running:
        yield running


def connect(relay: Relay) -> socket.socket:
    return socket.create_connection(("127.0.0.1", relay.port), timeout=10)


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_passes_bytes_both_ways(relay: Relay, echo: Echo) -> None:
    with connect(relay) as sock:
        sock.sendall(b"hello")
        assert receive(sock, 5) == b"hello"
    assert relay.accepted == 1
    assert relay.received_bytes == 5
    assert relay.client_streams() == [b"hello"]


def test_cut_refuses_new_connections_and_closes_open_ones_until_restored(relay: Relay) -> None:
    with connect(relay) as open_before:
        open_before.sendall(b"ping")
        assert receive(open_before, 4) == b"ping"

        relay.cut()

        assert relay.cut_off
        with pytest.raises(ConnectionRefusedError):  # refused, not reset or timed out
            connect(relay)
        assert closed_by_peer(open_before)

    relay.restore()
    with connect(relay) as after:
        after.sendall(b"again")
        assert receive(after, 5) == b"again"


def test_hold_delivers_nothing_until_release(relay: Relay, echo: Echo) -> None:
    relay.hold()
    with connect(relay) as sock:
        sock.sendall(b"held")
        assert eventually(lambda: relay.received_bytes == 4, timeout=10)
        time.sleep(0.5)
        assert echo.got() == b""  # arrived at the relay, not passed on
        relay.release()
        assert receive(sock, 4) == b"held"
    assert echo.got() == b"held"


def test_hold_answers_passes_requests_on_but_no_answer_back_until_passthrough(
    relay: Relay, echo: Echo
) -> None:
    relay.hold_answers()
    with connect(relay) as sock:
        sock.sendall(b"acted on")
        assert eventually(lambda: echo.got() == b"acted on", timeout=10)  # upstream has it
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # ... and its answer waits at the relay
            sock.recv(8)
        sock.settimeout(10)
        relay.passthrough()
        assert receive(sock, 8) == b"acted on"


def test_answers_held_for_a_cut_link_are_dropped_and_the_relay_serves_again(
    relay: Relay, echo: Echo
) -> None:
    relay.hold_answers()
    with connect(relay) as sock:
        sock.sendall(b"lost")
        assert eventually(lambda: echo.got() == b"lost", timeout=10)
        relay.cut()
        assert closed_by_peer(sock)  # the answer never came
    assert eventually(lambda: relay.open_links == 0, timeout=10)
    relay.restore()
    relay.passthrough()
    with connect(relay) as sock:
        sock.sendall(b"again")
        assert receive(sock, 5) == b"again"


def test_slow_delays_what_clients_send_by_at_least_its_delay(relay: Relay, echo: Echo) -> None:
    relay.slow(1.0)
    with connect(relay) as sock:
        sent = time.monotonic()
        sock.sendall(b"late")
        assert receive(sock, 4) == b"late"
        assert time.monotonic() - sent >= 1.0  # a lower bound only: load makes it later
    relay.passthrough()
    with connect(relay) as sock:
        sock.sendall(b"now")
        assert receive(sock, 3) == b"now"


def test_what_a_client_sent_before_it_went_away_is_still_delivered(
    relay: Relay, echo: Echo
) -> None:
    relay.hold()
    with connect(relay) as sock:
        sock.sendall(b"last words")
        assert eventually(lambda: relay.received_bytes == 10, timeout=10)
    relay.release()
    assert eventually(lambda: echo.got() == b"last words", timeout=10)


def test_stop_closes_everything_and_ends_its_thread(echo: Echo) -> None:
    relay = Relay(echo.port).start()
    sock = connect(relay)
    sock.sendall(b"x")
    assert receive(sock, 1) == b"x"
    relay.stop()
    assert not relay.running
    with sock:
        assert closed_by_peer(sock)
    with pytest.raises(ConnectionRefusedError):
        connect(relay)
