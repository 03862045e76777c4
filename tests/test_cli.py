"""The CLI as a user runs it: exit codes, check's file:line lines, try's trace, replay."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from bridge.cli import main
from bridge.delivery.worker import Worker
from bridge.exceptions import ConfigError
from bridge.ids import new_id
from bridge.records import HoldState, ProviderHold
from bridge.service import load_service
from bridge.store import open_store
from tests.fakes.provider import FakeProvider
from tests.helpers import shop_event, write_tree
from tests.mistakes import MISTAKES, write_config

GOOD = {
    "rules/main.yaml": """
        providers:
          audit: {type: log}
          desk:
            type: http
            url: "http://127.0.0.1:9/tickets"
            headers: {Authorization: "Bearer ${DESK_TOKEN}"}
        sources:
          shop:
            verify: {type: none}
        rules:
          - name: vip-order
            source: shop
            when:
              body.kind: order
              body.total: {gte: 100}
            action: create_ticket
            provider: desk
            ticket:
              subject: "Big order {{ body.id }}"
              message: {text: {template: order.txt.j2}}
          - name: any-order
            source: shop
            when: {body.kind: order}
            action: create_ticket
            provider: audit
            ticket:
              subject: "Order {{ body.id }}"
    """,
    "templates/order.txt.j2": "Order {{ body.id }} for {{ body.total }}\n",
}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("DESK_TOKEN", "desk-token-very-secret")
    return write_tree(tmp_path, GOOD)


def args_for(tree: Path) -> list[str]:
    return ["--rules", str(tree / "rules"), "--templates", str(tree / "templates")]


def test_check_lists_every_problem_with_file_and_line_and_exits_1(tmp_path, capsys):
    write_tree(
        tmp_path,
        {
            "rules/a.yaml": """
                providers:
                  audit: {type: log}
                sources:
                  shop: {verify: {type: none}}
            """,
            "rules/b.yaml": """
                rules:
                  - name: one
                    source: shop
                    when:
                      body.kind: {like: order}
                      body.email: {regex: "(unclosed"}
                    action: create_ticket
                    provider: nowhere
                    ticket:
                      subject: "{{ body.id "
                      message: {text: {template: missing.txt.j2}}
            """,
        },
    )
    (tmp_path / "templates").mkdir()
    assert main(["check", *args_for(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    b = f"{tmp_path}/rules/b.yaml"
    # the unknown provider does not stop the run: every compile problem shows with it
    assert any(
        line.startswith(f"{b}:8: rules[0].provider: ") and "nowhere" in line for line in out
    ), out
    assert any(
        line.startswith(f"{b}:5: rules[0].when.body.kind: no operator") and "'like'" in line
        for line in out
    ), out
    assert any(line.startswith(f"{b}:6: rules[0].when.body.email.regex: ") for line in out), out
    assert any(line.startswith(f"{b}:10: rules[0].ticket.subject: ") for line in out), out
    assert any(
        line.startswith(f"{b}:11: rules[0].ticket.message.text") and "missing.txt.j2" in line
        for line in out
    ), out
    assert len(out) == 5


def test_check_as_a_process_prints_all_nine_mistakes_in_one_run(tmp_path):
    """`ticketbridge check` itself (the console script): exit 1, one line per problem."""
    write_config(tmp_path, set(MISTAKES))
    script = Path(sys.executable).with_name("ticketbridge")
    done = subprocess.run(
        [str(script), "check", *args_for(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    rules, templates = str(tmp_path / "rules"), str(tmp_path / "templates")
    assert done.stdout.splitlines() == [
        m.problem.replace("<rules>", rules).replace("<templates>", templates)
        for m in MISTAKES.values()
    ]
    assert done.stderr.strip() == "9 problem(s) found"


RULE_CONTEXT = "body, headers, query, source, event, rule, vars, now"


def test_check_without_samples_refuses_a_template_reading_a_name_the_context_never_holds(
    tmp_path, capsys
):
    write_tree(
        tmp_path,
        {
            "rules/main.yaml": """
                providers:
                  audit: {type: log}
                sources:
                  shop: {verify: {type: none}}
                rules:
                  - name: order
                    source: shop
                    if: "rule.name == 'order'"
                    action: create_ticket
                    provider: audit
                    ticket:
                      subject: "Order for {{ customer_name }}"
                      message: {text: {template: note.txt.j2}}
            """,
            "templates/note.txt.j2": "Hello\n{% include 'sign.j2' %}\n",
            "templates/sign.j2": "{% set team = vars.team %}{{ team }}\n{{ customer_name }}\n",
        },
    )
    assert main(["check", *args_for(tmp_path)]) == 1
    rules, templates = f"{tmp_path}/rules/main.yaml", f"{tmp_path}/templates"
    assert capsys.readouterr().out.splitlines() == [
        f"{rules}:8: rules[0].if: unknown variable 'rule': templates here see only "
        "body, headers, query, source, event, vars, now (`rule` is seen by a rule's ticket, "
        "not by its `if`, which chooses the rule)",
        f"{rules}:12: rules[0].ticket.subject: unknown variable 'customer_name': templates here "
        f"see only {RULE_CONTEXT} (a payload field is body.customer_name)",
        f"{templates}/sign.j2:2: rules[0].ticket.message.text.template: unknown variable "
        f"'customer_name': templates here see only {RULE_CONTEXT} "
        "(a payload field is body.customer_name)",
    ]
    # found at load, so `serve` and `worker` refuse the configuration too
    with pytest.raises(ConfigError):
        load_service(tmp_path / "rules", tmp_path / "templates", {}, httpx.AsyncClient())


def test_check_counts_in_words_and_says_which_rules_no_sample_rendered(tree, capsys):
    assert main(["check", *args_for(tree)]) == 0
    samples = tree / "rules" / "samples"
    assert capsys.readouterr().out.splitlines() == [
        "ok: 1 source, 2 rules, 2 providers, 0 samples",
        "0 of 2 rules rendered against a sample; not rendered: vip-order, any-order "
        f"(a sample is a payload in {samples}/SOURCE/NAME.json)",
    ]
    write_tree(
        tree,
        {
            "rules/samples/shop/small.json": '{"kind": "order", "id": "A1", "total": 40}',
            "rules/samples/shop/other.json": '{"kind": "refund", "id": "A2"}',
        },
    )
    assert main(["check", *args_for(tree)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ok: 1 source, 2 rules, 2 providers, 2 samples",
        "1 of 2 rules rendered against a sample; not rendered: vip-order",
        f"  {samples}/shop/other.json: no rule (unmatched)",
        f"  {samples}/shop/small.json: any-order",
    ]
    write_tree(tree, {"rules/samples/shop/big.json": '{"kind": "order", "id": "A3", "total": 500}'})
    assert main(["check", *args_for(tree)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "ok: 1 source, 2 rules, 2 providers, 3 samples",
        "2 of 2 rules rendered against a sample",
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "the sample's headers are not JSON: "),
        (b"\xff\xfe{}", "the sample's headers are not JSON: "),
        ('["x-token: 1"]', "the sample's headers must be a JSON object, not list"),
    ],
)
def test_sample_headers_that_are_not_a_json_object_are_a_problem_not_a_crash(
    tree, capsys, text, says
):
    samples = tree / "rules" / "samples" / "shop"
    write_tree(tree, {"rules/samples/shop/a.json": '{"kind": "order", "id": "A1"}'})
    headers = samples / "a.headers.json"
    headers.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["check", *args_for(tree)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{headers}: {says}")


def test_a_sample_folder_naming_no_source_lists_the_sources(tree, capsys):
    write_tree(tree, {"rules/samples/shopp/a.json": "{}"})
    assert main(["check", *args_for(tree)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{tree}/rules/samples/shopp/a.json: no source named 'shopp' (the folder names the "
        "source) (defined: shop)"
    ]


CHOOSE_RULES = (
    "give another with --rules DIR or the BRIDGE_RULES environment variable, "
    "or run `ticketbridge init` to write a working example"
)


def test_a_missing_rules_directory_is_named_with_how_to_choose_another(
    tmp_path, capsys, monkeypatch
):
    assert main(["check", "--rules", str(tmp_path / "nope")]) == 1
    out = capsys.readouterr().out
    assert (
        out
        == f"{tmp_path}/nope: the rules directory {tmp_path}/nope does not exist: {CHOOSE_RULES}\n"
    )
    # in an empty directory, with the defaults: the absolute path of ./rules
    monkeypatch.delenv("BRIDGE_RULES", raising=False)
    monkeypatch.chdir(tmp_path)
    for command in (["check"], ["serve", "--db", f"sqlite:///{tmp_path}/bridge.db"]):
        assert main(command) == 1
        assert capsys.readouterr().out == (
            f"rules: the rules directory {tmp_path}/rules does not exist: {CHOOSE_RULES}\n"
        )


def test_a_missing_templates_directory_is_named_with_how_to_choose_another(tree, capsys):
    missing = tree / "elsewhere"
    assert main(["check", "--rules", str(tree / "rules"), "--templates", str(missing)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{tree}/rules/main.yaml:20: rules[0].ticket.message.text.template: template file "
        f"'order.txt.j2' not found: the templates directory {missing} does not exist; give "
        "another with --templates DIR or the BRIDGE_TEMPLATES environment variable, or run "
        "`ticketbridge init` to write a working example"
    ]


def test_try_explains_why_a_rule_did_not_match(tree, tmp_path, capsys):
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps({"kind": "order", "id": "A1", "total": 40}))
    assert main(["try", "shop", str(payload), "--json", *args_for(tree)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matched"] == ["any-order"]
    vip = result["trace"][0]
    assert vip["rule"] == "vip-order" and vip["matched"] is False
    assert vip["failed"]["path"] == "body.total"
    assert vip["failed"]["op"] == "gte"
    assert vip["failed"]["expected"] == 100 and vip["failed"]["actual"] == 40
    assert result["actions"][0]["ticket"]["subject"] == "Order A1"

    assert main(["try", "shop", str(payload), *args_for(tree)]) == 0
    text = capsys.readouterr().out
    assert "body.total gte 100, saw 40" in text


def test_try_shows_the_exact_request_with_secrets_masked_and_sends_nothing(tree, tmp_path, capsys):
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps({"kind": "order", "id": "B2", "total": 500}))
    # 127.0.0.1:9 (discard) would refuse a real connection; the dry run must not try
    assert main(["try", "shop", str(payload), "--json", *args_for(tree)]) == 0
    out = capsys.readouterr().out
    assert "desk-token-very-secret" not in out
    (action,) = json.loads(out)["actions"]
    (request,) = action["requests"]
    assert request["method"] == "POST" and request["url"] == "http://127.0.0.1:9/tickets"
    assert request["headers"]["authorization"] == "[redacted]"
    # DESIGN §4.1: any header whose name contains "key" is shown redacted
    assert request["headers"]["idempotency-key"] == "[redacted]"
    assert request["json"]["subject"] == "Big order B2"
    assert request["json"]["message"]["text"] == "Order B2 for 500"
    # the answer it got is shown, and said to be the stub's
    assert request["answer"] == {"status": 200, "json": {"id": "dry-run"}, "stubbed": True}
    assert re.fullmatch(r"dlv_try_[0-9a-z]{26}", action["delivery_id"])


TWO_REQUESTS = {
    "rules/main.yaml": """
        providers:
          desk:
            type: http
            url: "${DESK_URL:-http://127.0.0.1:9}/tickets"
            headers: {Authorization: "Bearer ${DESK_TOKEN}"}
        sources:
          shop: {verify: {type: none}}
        rules:
          - {name: first, source: shop, action: create_ticket, provider: desk,
             ticket: {subject: "A {{ body.id }}"}, continue: true}
          - {name: second, source: shop, action: create_ticket, provider: desk,
             ticket: {subject: "B {{ body.id }}"}}
    """,
    "templates/.keep": "",
}


def test_try_text_says_once_that_the_answers_are_stubbed_and_shows_each(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("DESK_URL", raising=False)
    monkeypatch.setenv("DESK_TOKEN", "desk-token-very-secret")
    tree = write_tree(tmp_path, TWO_REQUESTS)
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps({"id": "D4"}))
    assert main(["try", "shop", str(payload), *args_for(tree)]) == 0
    out = capsys.readouterr().out
    note = "no network: each answer below is stubbed"
    assert out.count(note) == 1
    assert out.index(note) < out.index("request: POST")
    assert out.count("request: POST http://127.0.0.1:9/tickets") == 2
    assert out.count("answer (stubbed): 200") == 2
    assert "desk-token-very-secret" not in out


def test_two_try_sends_carry_two_different_idempotency_keys(tmp_path, capsys, monkeypatch):
    tree = write_tree(tmp_path, GOOD)
    monkeypatch.setenv("DESK_TOKEN", "desk-token-very-secret")
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps({"kind": "order", "id": "E5", "total": 500}))
    with FakeProvider(idempotent=True).running() as desk:
        rules = tree / "rules/main.yaml"
        rules.write_text(rules.read_text().replace("http://127.0.0.1:9", desk.url))
        shown = []
        for _ in range(2):
            assert main(["try", "shop", str(payload), "--send", "--json", *args_for(tree)]) == 0
            shown.append(json.loads(capsys.readouterr().out)["actions"][0])
        assert main(["try", "shop", str(payload), "--send", *args_for(tree)]) == 0
        text = capsys.readouterr().out
    keys = [r.headers["idempotency-key"] for r in desk.requests]
    assert len(set(keys)) == 3  # every run is a new delivery ...
    assert desk.repeats == [] and len(desk.tickets) == 3  # ... which the helpdesk takes as new
    assert [a["delivery_id"] for a in shown] == keys[:2]  # the key is the delivery id shown
    answers = [a["requests"][0]["answer"] for a in shown]
    assert answers == [
        {"status": 201, "json": {"id": "T-1"}, "stubbed": False},
        {"status": 201, "json": {"id": "T-2"}, "stubbed": False},
    ]
    # the text of a send shows the real answer, and no stub note
    assert "    answer: 201" in text and '"id": "T-3"' in text
    assert "stubbed" not in text
    assert "desk-token-very-secret" not in text


def test_try_send_reports_a_failed_send_with_exit_1(tree, tmp_path, capsys):
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps({"kind": "order", "id": "C3", "total": 500}))
    assert main(["try", "shop", str(payload), "--send", *args_for(tree)]) == 1
    out = capsys.readouterr().out
    assert "sent: retryable ConnectError" in out


def test_usage_errors_exit_2_and_missing_things_exit_1(tree, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["replay", "--db", f"sqlite:///{tmp_path}/x.db", *args_for(tree)])
    assert caught.value.code == 2
    _ingest(f"sqlite:///{tmp_path}/x.db", {"kind": "none"})
    assert main(["show", "evt_nope", "--db", f"sqlite:///{tmp_path}/x.db"]) == 1
    assert "no event evt_nope" in capsys.readouterr().err
    assert main(["try", "nosuch", str(tree / "templates/order.txt.j2"), *args_for(tree)]) == 1


def test_schema_prints_the_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "rules" in schema["properties"] and "$schema" in schema


def _ingest(db: str, payload: dict, *, number: int = 1) -> str:
    async def go() -> str:
        store = open_store(db)
        await store.open()
        try:
            event = shop_event(number, payload)
            [result] = await store.ingest([event], dedupe_window=60, now=event.received_at)
            return result.event_id
        finally:
            await store.close()

    return asyncio.run(go())


def _work(tree: Path, db: str) -> None:
    """What a running worker does: route and deliver until nothing is due."""

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            service = load_service(tree / "rules", tree / "templates", os.environ, client)
            store = open_store(db)
            await store.open()
            try:
                await Worker(service=service, store=store).run_until_idle()
            finally:
                await store.close()

    asyncio.run(go())


def _show(capsys, db: str, event_id: str) -> dict:
    assert main(["show", event_id, "--db", db, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_replay_after_fixing_a_template_delivers_and_supersedes_the_dead(tree, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/bridge.db"
    rules = tree / "rules/main.yaml"
    rules.write_text(rules.read_text().replace("provider: desk", "provider: audit"))
    (tree / "templates/order.txt.j2").write_text("Order {{ body.customer.name }}\n")
    event_id = _ingest(db, {"kind": "order", "id": "D5", "total": 1000})
    _work(tree, db)
    detail = _show(capsys, db, event_id)
    assert detail["status"] == "failed"
    (dead,) = detail["deliveries"]
    assert dead["status"] == "dead" and "order.txt.j2, line 1" in dead["last_error"]

    (tree / "templates/order.txt.j2").write_text("Order {{ body.id }}\n")
    assert main(["replay", event_id, "--db", db, *args_for(tree)]) == 0
    assert "new deliveries: dlv_" in capsys.readouterr().out
    _work(tree, db)
    detail = _show(capsys, db, event_id)
    assert detail["status"] == "done"
    assert [d["status"] for d in detail["deliveries"]] == ["cancelled", "done"]
    assert detail["deliveries"][1]["action"]["message"]["text"] == "Order D5"


def test_replay_dead_retries_stored_actions_and_purge_deletes_old_events(tree, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/bridge.db"
    # desk is unreachable (127.0.0.1:9) and allows one attempt only: the delivery dies
    text = (
        (tree / "rules/main.yaml")
        .read_text()
        .replace("headers: {Authorization", "retry: {max_attempts: 1}\n    headers: {Authorization")
    )
    (tree / "rules/main.yaml").write_text(text)
    event_id = _ingest(db, {"kind": "order", "id": "E1", "total": 500})
    _work(tree, db)
    (delivery,) = _show(capsys, db, event_id)["deliveries"]
    assert delivery["status"] == "dead" and "gave up after 1 tries" in delivery["last_error"]

    assert (
        main(["replay", "--status", "dead", "--provider", "desk", "--db", db, *args_for(tree)]) == 0
    )
    assert "1 dead deliveries queued again" in capsys.readouterr().out
    (delivery,) = _show(capsys, db, event_id)["deliveries"]
    assert delivery["status"] == "pending" and delivery["attempts"] == 1

    assert main(["purge", "--older-than", "1d", "--db", db, *args_for(tree)]) == 0
    assert "purged 0 events" in capsys.readouterr().out  # its delivery is not final yet
    _work(tree, db)
    assert main(["purge", "--older-than", "1d", "--db", db, *args_for(tree)]) == 0
    assert "purged 1 events" in capsys.readouterr().out
    assert main(["show", event_id, "--db", db]) == 1


def test_purge_keeps_dedupe_keys_inside_the_window(tree, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/bridge.db"
    two_days_ago = time.time() - 2 * 86400

    async def ingest(key: str) -> bool:
        store = open_store(db)
        await store.open()
        try:
            event = replace(shop_event(1, {"kind": "none"}), id=new_id("evt"), dedupe_key=key)
            event = replace(event, received_at=two_days_ago)
            [result] = await store.ingest([event], dedupe_window=7 * 86400, now=two_days_ago)
            return result.duplicate
        finally:
            await store.close()

    assert asyncio.run(ingest("order-1")) is False
    _work(tree, db)  # routed: unmatched, so purgeable

    assert main(["purge", "--older-than", "1d", "--db", db, *args_for(tree)]) == 0
    assert "purged 1 events and 0 dedupe keys" in capsys.readouterr().out
    # the sender retrying within the 7-day window still gets a duplicate, not a second ticket
    assert asyncio.run(ingest("order-1")) is True


def test_resume_ends_a_pause_and_lists_what_is_paused(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/bridge.db"

    async def pause() -> None:
        store = open_store(db)
        await store.open()
        try:
            now = time.time()
            hold = ProviderHold(
                provider="desk",
                state=HoldState.PAUSED,
                since=now,
                until=now + 600,
                reason="HTTP 401",
            )
            await store.hold_provider(hold)
        finally:
            await store.close()

    _ingest(db, {"kind": "none"})  # a store the service has used
    assert main(["resume", "--db", db]) == 0
    assert "no provider is paused" in capsys.readouterr().err
    asyncio.run(pause())
    assert main(["resume", "--db", db]) == 0
    assert "desk  paused until" in capsys.readouterr().out
    assert main(["resume", "desk", "--db", db]) == 0
    assert "provider desk resumed" in capsys.readouterr().out
    assert main(["resume", "desk", "--db", db]) == 1
    assert "desk is not paused" in capsys.readouterr().err
