import asyncio
import io
import json
import logging
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.logs import JsonFormatter, LineBatches, configure_logging, mask_also
from bridge.redaction import mask
from bridge.store import open_store
from tests.fakes.provider import FakeProvider
from tests.helpers import (
    poll,
    running_server,
    server_process,
    shop_event,
    show_event,
    worker_process,
    write_tree,
)


@given(st.permutations(["Bearer abc-123", "abc-123", "token=abc-123&x"]))
def test_mask_replaces_the_longest_secret_whole_in_any_order(secrets):
    text = "sent Bearer abc-123 and token=abc-123&x and abc-123"
    assert mask(text, secrets) == "sent [redacted] and [redacted] and [redacted]"


def test_json_lines_carry_extra_fields_and_never_a_secret():
    formatter = JsonFormatter(secrets=["s3cr3t-value"])
    record = logging.LogRecord("bridge.worker", logging.INFO, __file__, 1, "attempt", None, None)
    record.action = "attempt"
    record.delivery_id = "dlv_1"
    record.error = "HTTP 401: key s3cr3t-value rejected"
    line = json.loads(formatter.format(record))
    assert line["action"] == "attempt" and line["delivery_id"] == "dlv_1"
    assert line["level"] == "info" and line["msg"] == "attempt"
    assert line["error"] == "HTTP 401: key [redacted] rejected"


def test_the_level_comes_from_the_option():
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx"]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    try:
        configure_logging("warning", secrets=["s3cr3t-value"])
        root = logging.getLogger()
        assert root.level == logging.WARNING
        assert not logging.getLogger("bridge.receiver").isEnabledFor(logging.INFO)
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert handler.formatter.secrets == ["s3cr3t-value"]
    finally:
        for lg, (handlers, level, propagate, disabled) in zip(loggers, saved, strict=True):
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, disabled


# -- the lines of a real server --------------------------------------------------------------

SHOP_TOKEN = "shop-token-5e1f0a"
HELPDESK_TOKEN = "helpdesk-token-77c2"
WRONG_TOKEN = "wrong-token-a41b"
BODY_MARKER = "card-4111-body-marker"

CONFIG = """
    providers:
      helpdesk:
        type: http
        url: "FAKE/tickets"
        headers: {Authorization: "Bearer ${HELPDESK_TOKEN}"}
    sources:
      shop:
        verify: {type: token, location: "header:x-shop-token", values: ["${SHOP_TOKEN}"]}
    rules:
      - name: order-ticket
        source: shop
        action: create_ticket
        provider: helpdesk
        ticket: {subject: "Order {{ body.id }}"}
"""


def test_one_line_per_request_and_attempt_with_ids_and_no_secret_or_body(tmp_path):
    with FakeProvider().running() as helpdesk:
        config = CONFIG.replace("FAKE", helpdesk.url)
        root = write_tree(tmp_path, {"rules/main.yaml": config, "templates/.keep": ""})
        log = tmp_path / "server.log"
        with (
            running_server(
                rules=root / "rules",
                templates=root / "templates",
                db=f"sqlite:///{tmp_path / 'bridge.db'}",
                env={"SHOP_TOKEN": SHOP_TOKEN, "HELPDESK_TOKEN": HELPDESK_TOKEN},
                log=log,
            ) as url,
            httpx.Client(timeout=10) as http,
        ):
            body = {"id": "B-1", "note": BODY_MARKER}
            accepted = http.post(
                f"{url}/hooks/shop", json=body, headers={"X-Shop-Token": SHOP_TOKEN}
            )
            assert accepted.status_code == 202
            rejected = http.post(
                f"{url}/hooks/shop", json=body, headers={"X-Shop-Token": WRONG_TOKEN}
            )
            assert rejected.status_code == 401

            def lines() -> list[dict[str, object]]:
                text = log.read_text()
                return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

            attempt = poll(
                lambda: next((e for e in lines() if e.get("action") == "attempt"), None),
                what="the attempt's log line",
            )
    text = log.read_text()
    for secret in (SHOP_TOKEN, HELPDESK_TOKEN, WRONG_TOKEN, BODY_MARKER):
        assert secret not in text
    event_id = accepted.json()["event_id"]
    ok, refused = [e for e in lines() if e.get("action") == "receive"]
    assert ok["event_ids"] == [event_id] and ok["outcome"] == "accepted"
    assert ok["source"] == "shop" and ok["status"] == 202 and "duration_ms" in ok
    assert refused["outcome"] == "rejected" and refused["status"] == 401
    assert attempt["event_id"] == event_id
    assert str(attempt["delivery_id"]).startswith("dlv_")
    assert attempt["rule"] == "order-ticket" and attempt["provider"] == "helpdesk"
    assert attempt["outcome"] == "success" and attempt["status"] == "done"
    assert isinstance(attempt["duration_ms"], float)


def _batched(every: float) -> tuple[logging.Logger, LineBatches, io.StringIO]:
    stream = io.StringIO()
    handler = LineBatches(stream, every=every)
    logger = logging.getLogger(f"test.batches.{every}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler, stream


def test_lines_wait_for_their_batch_a_warning_writes_at_once_and_close_writes_the_rest():
    logger, handler, stream = _batched(every=3600.0)  # its thread never comes round here
    logger.info("one")
    assert stream.getvalue() == ""
    logger.warning("two")
    assert stream.getvalue().splitlines() == ["one", "two"]
    logger.info("three")
    handler.close()
    assert stream.getvalue().splitlines() == ["one", "two", "three"]


def test_the_batch_thread_writes_waiting_lines_within_its_interval():
    logger, handler, stream = _batched(every=0.01)
    try:
        logger.info("soon")
        poll(lambda: stream.getvalue() == "soon\n", timeout=5.0, what="the batch written")
    finally:
        handler.close()


def test_a_reloaded_configurations_secrets_are_masked_too_and_the_old_ones_still():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(["old-secret-1"]))
    root.handlers[:] = [handler]
    try:
        mask_also(["new-secret-22", ""])
        logging.getLogger("test.mask").warning("old-secret-1 and new-secret-22")
    finally:
        root.handlers[:] = saved
    line = json.loads(stream.getvalue())
    assert line["msg"] == "[redacted] and [redacted]"


def test_a_closed_batch_and_the_servers_own_lines_are_written_at_once():
    stream = io.StringIO()
    handler = LineBatches(stream, every=3600.0, at_once={"test.server"})
    for name in ("test.app", "test.server"):
        logging.getLogger(name).handlers[:] = [handler]
        logging.getLogger(name).propagate = False
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("test.app").info("waiting")
    assert stream.getvalue() == ""
    logging.getLogger("test.server").info("finished")  # takes what waits before it along
    assert stream.getvalue().splitlines() == ["waiting", "finished"]
    handler.close()
    logging.getLogger("test.app").info("after the end")
    assert stream.getvalue().splitlines() == ["waiting", "finished", "after the end"]


# -- the last lines of a process stopped with SIGTERM ------------------------------------------


def _json_lines(log: Path) -> list[dict[str, Any]]:
    text = log.read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_serve_stopped_with_sigterm_writes_every_line_to_its_last(tmp_path, processes):
    root = write_tree(tmp_path, {"rules/main.yaml": SHUTDOWN_CONFIG, "templates/.keep": ""})
    log = tmp_path / "serve.log"
    with server_process(
        rules=root / "rules",
        templates=root / "templates",
        db=f"sqlite:///{tmp_path / 'bridge.db'}",
        log=log,
        extra=["--processes", processes],
    ) as server:
        assert server.terminate() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    lines = _json_lines(log)
    messages = [line["msg"] for line in lines]
    started = [m.removeprefix("Started server process ") for m in messages if "Started se" in m]
    assert len(started) == int(processes)
    for pid in started:  # every receiver process wrote its lines up to its very last
        assert f"Finished server process {pid}" in messages
    assert messages.count("Application shutdown complete.") == int(processes)
    # each one's worker drained and said so before the application's shutdown completed
    stops = [i for i, line in enumerate(lines) if line.get("action") == "worker_stop"]
    assert len(stops) == int(processes)
    assert max(stops) < max(i for i, m in enumerate(messages) if m.startswith("Application sh"))
    if processes == "1":
        assert messages[-1] == f"Finished server process {started[0]}"


def test_a_worker_stopped_with_sigterm_lets_the_attempt_finish_and_logs_it_all(tmp_path, capsys):
    with FakeProvider(delay=1.0).running() as helpdesk:
        config = SHUTDOWN_CONFIG.replace("type: log", f"{{type: http, url: {helpdesk.url}}}")
        root = write_tree(tmp_path, {"rules/main.yaml": config, "templates/.keep": ""})
        db = f"sqlite:///{tmp_path / 'bridge.db'}"
        event_id = _stored(db, {"id": "W-1"})
        log = tmp_path / "worker.log"
        with worker_process(
            rules=root / "rules", templates=root / "templates", db=db, log=log
        ) as worker:
            poll(lambda: helpdesk.requests, what="the attempt to reach the helpdesk")
            assert worker.terminate() == 0
    actions = [line.get("action") for line in _json_lines(log)]
    assert actions[-3:] == ["worker_drain", "attempt", "worker_stop"], log.read_text()
    drain, attempt, stop = _json_lines(log)[-3:]
    assert drain["in_flight"] == 1 and drain["grace_s"] == 10.0
    assert attempt["event_id"] == event_id and attempt["outcome"] == "success"
    assert stop["msg"] == "worker stopped" and stop["released"] == 0
    assert show_event(capsys, db, event_id)["status"] == "done"


SHUTDOWN_CONFIG = """
    defaults: {shutdown_grace: 10s}
    providers:
      helpdesk:
        type: log
    sources:
      shop: {verify: {type: none}}
    rules:
      - name: order
        source: shop
        action: create_ticket
        provider: helpdesk
        ticket: {subject: "Order {{ body.id }}"}
"""


def _stored(db: str, payload: dict[str, object]) -> str:
    """Store one event of `shop` (for a worker process to route and deliver); its id."""

    async def ingest() -> str:
        store = open_store(db)
        await store.open()
        try:
            event = shop_event(1, payload)
            [result] = await store.ingest([event], dedupe_window=60, now=event.received_at)
            return result.event_id
        finally:
            await store.close()

    return asyncio.run(ingest())
