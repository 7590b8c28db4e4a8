"""`payments-api serve` as a real process: hostile bytes on a socket get the contract's answer
(431 HEADERS_TOO_LARGE for oversized headers, a JSON 400 for what is not HTTP), the process
keeps answering others, and every line it writes, uvicorn's own included, is JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from payments_api.config.constants import MAX_HEADER_COUNT
from payments_api.server import MAX_HEAD_BYTES
from tests.fixtures.serve_process import ServeProcess, exchange, parse_answer, serve_process
from tests.fixtures.servers import nx_27017

MIB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One `serve` on its embedded defaults for the module: every test also checks that the
    ones before it left it answering."""
    with serve_process(tmp_path_factory.mktemp("serve")) as process:
        yield process


def head(*fields: bytes) -> bytes:
    """A GET /health request head with `fields` after its two own (Host, Connection: close)."""
    own = b"Host: 127.0.0.1\r\nConnection: close\r\n"
    return b"GET /health HTTP/1.1\r\n" + own + b"".join(fields) + b"\r\n"


def assert_refused_431_and_still_serving(server: ServeProcess, raw: bytes) -> None:
    answer = parse_answer(raw)
    assert answer.status == 431, raw[:500]
    body = answer.json()
    assert body["error"] == "HEADERS_TOO_LARGE"
    assert set(body) == {"error", "message", "requestId"}
    assert body["requestId"] == answer.headers["x-request-id"]
    assert answer.headers["content-type"] == "application/json"
    assert server.process.poll() is None, server.tail()
    assert server.health() == 200


def test_one_header_of_32_mib_is_a_431_and_the_process_keeps_serving(
    server: ServeProcess,
) -> None:
    raw = exchange(server.port, head(b"X-Big: " + b"a" * (32 * MIB) + b"\r\n"))
    assert_refused_431_and_still_serving(server, raw)


def test_a_head_past_the_bound_is_answered_before_the_rest_of_it_is_sent(
    server: ServeProcess,
) -> None:
    """The server refuses a head that keeps growing once it passes its bound: it does not
    wait for (or buffer) the rest. This head never ends; only the refusal answers it."""
    endless = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * MIB
    raw = exchange(server.port, endless)
    assert_refused_431_and_still_serving(server, raw)
    request_id = parse_answer(raw).headers["x-request-id"]
    assert any(
        record.get("security") is True
        and record["message"].startswith("request head too large")
        and record["requestId"] == request_id
        for record in server.log_records()
    ), server.tail()


def test_300_000_headers_are_a_431_and_the_process_keeps_serving(server: ServeProcess) -> None:
    fields = [b"X-H%d: v\r\n" % index for index in range(300_000)]
    raw = exchange(server.port, head(*fields))
    assert_refused_431_and_still_serving(server, raw)


def test_headers_over_16_kib_sent_at_once_are_the_apps_431(server: ServeProcess) -> None:
    """Under the server's own bound (which leaves room for a request line), so the app's
    rule answers: 20 KiB of headers in one piece."""
    raw = exchange(server.port, head(b"X-Big: " + b"a" * (20 * 1024) + b"\r\n"))
    assert_refused_431_and_still_serving(server, raw)
    assert "strict-transport-security" in parse_answer(raw).headers


def test_one_header_too_many_is_the_apps_431(server: ServeProcess) -> None:
    fields = [b"X-H%d: v\r\n" % index for index in range(MAX_HEADER_COUNT - 1)]
    raw = exchange(server.port, head(*fields))
    assert_refused_431_and_still_serving(server, raw)


def test_as_many_headers_as_allowed_are_served(server: ServeProcess) -> None:
    fields = [b"X-H%d: v\r\n" % index for index in range(MAX_HEADER_COUNT - 2)]
    raw = exchange(server.port, head(*fields))
    assert parse_answer(raw).status == 200, raw[:500]


def test_many_requests_on_one_connection_are_each_bounded_on_their_own(
    server: ServeProcess,
) -> None:
    """The bound is per request: 400 small requests pipelined on one connection (more bytes
    than the bound in all) are all answered."""
    one = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\n"
    raw = exchange(server.port, one * 399 + head(), limit=64 * MIB)
    assert len(one) * 400 > MAX_HEAD_BYTES
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 400, raw[-500:]


# --- bytes that are not HTTP: a JSON 400, and nothing but JSON lines in the output ---------

GARBAGE = {
    "tls-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),
    "all-bytes": bytes(range(256)),
    "no-method": b"GARBAGE\x00\x01 nonsense\r\n\r\n",
    "bad-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "bad-header": b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
}


def send_garbage(server: ServeProcess) -> None:
    """Every kind of garbage gets the contract's 400, and the process keeps serving."""
    for name, payload in GARBAGE.items():
        answer = parse_answer(exchange(server.port, payload))
        assert answer.status == 400, name
        body = answer.json()
        assert body["error"] == "BAD_REQUEST", name
        assert body["requestId"] == answer.headers["x-request-id"], name
        assert server.health() == 200


def assert_only_json_lines(server: ServeProcess) -> list[dict[str, object]]:
    """Every line the (stopped) process wrote, on stdout and stderr, is a JSON object."""
    records = []
    for stream, line in server.output_lines():
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"not JSON on {stream}: {line!r}") from None
        assert isinstance(record, dict), line
        assert {"@timestamp", "level", "message", "service", "pid"} <= set(record), line
        records.append(record)
    assert server.stderr.read_text() == ""
    return records


def uvicorn_lines(records: list[dict[str, object]], message: str) -> list[dict[str, object]]:
    return [r for r in records if r.get("component") == "uvicorn.error" and r["message"] == message]


def test_garbage_is_a_json_400_and_every_line_of_serve_is_json(tmp_path: Path) -> None:
    with serve_process(tmp_path) as server:
        send_garbage(server)
    records = assert_only_json_lines(server)
    assert len(uvicorn_lines(records, "Invalid HTTP request received.")) == len(GARBAGE)
    assert uvicorn_lines(records, "Application startup complete.")
    assert any(str(r["message"]).startswith("Finished server process") for r in records)
    assert all(r["environment"] == "test" for r in records)


def test_every_line_of_serve_with_workers_is_json(tmp_path: Path, redis_url: str) -> None:
    """`--workers 2` (which needs real servers): the parent and both workers log JSON."""
    (tmp_path / "nx").mkdir()
    with (
        nx_27017(tmp_path / "nx", pytest.fail) as mongodb_uri,
        serve_process(
            tmp_path, "--workers", "2", MONGODB_URI=mongodb_uri, REDIS_URL=redis_url
        ) as server,
    ):
        send_garbage(server)
    records = assert_only_json_lines(server)
    assert len(uvicorn_lines(records, "Invalid HTTP request received.")) == len(GARBAGE)
    [parent] = [r for r in records if str(r["message"]).startswith("Started parent process")]
    workers = {r["pid"] for r in records if str(r["message"]).startswith("Started server process")}
    assert len(workers) == 2
    assert parent["pid"] not in workers
    assert parent["environment"] == "test"
