"""What a user who installed only the package does (README "Install without cloning"): `init` in
an empty directory, then check, serve, the Quickstart's curl, send, events, show, try and
replay, each run as the `ticketbridge` command from that directory with no options, as a user
at a shell would. In CI's wheel stage that command is the installed wheel's script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from bridge.cli.init import example_files
from tests.helpers import (
    poll,
    server_process,
    ticketbridge,
    ticketbridge_command,
    ticketbridge_json,
)

QUICKSTART_FORM = {"name": "Ana Lima", "email": "ana@example.com", "message": "Where is my order?"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory that `ticketbridge init` (no DIR) filled with the example."""
    home = tmp_path_factory.mktemp("home")
    done = ticketbridge("init", cwd=home)
    assert done.returncode == 0, done.stderr
    assert "ticketbridge serve" in done.stdout and "ticketbridge send" in done.stdout
    return home


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_init_writes_the_whole_example(home):
    written = files_under(home)
    example = {str(relative): source.read_bytes() for relative, source in example_files()}
    assert {name: body for name, body in written.items() if name in example} == example
    assert {"rules/sources.yaml", "rules/samples/contact-form/hello.json"} <= set(written)


def test_init_refuses_to_overwrite_and_force_does(tmp_path):
    assert ticketbridge("init", str(tmp_path / "conf")).returncode == 0
    mine = tmp_path / "conf" / "rules" / "rules.yaml"
    mine.write_text("rules: []\n")
    refused = ticketbridge("init", str(tmp_path / "conf"))
    assert refused.returncode == 1
    assert "nothing was written" in refused.stderr and "--force" in refused.stderr
    assert str(Path("conf") / "rules" / "rules.yaml") in refused.stderr
    assert mine.read_text() == "rules: []\n"  # not a byte changed
    assert ticketbridge("init", str(tmp_path / "conf"), "--force").returncode == 0
    assert mine.read_text() != "rules: []\n"


def test_check_passes_on_what_init_wrote(home):
    done = ticketbridge("check", cwd=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: ")
    assert "rules/samples/stripe/dispute-created.json: stripe-dispute-opened" in done.stdout


def test_try_shows_the_rule_and_the_ticket(home):
    done = ticketbridge("try", "stripe", "rules/samples/stripe/dispute-created.json", cwd=home)
    assert done.returncode == 0, done.stderr
    assert "action stripe-dispute-opened -> audit: create_ticket" in done.stdout


def test_serve_in_an_empty_directory_says_where_it_looked_and_what_to_do(tmp_path):
    done = ticketbridge("serve", cwd=tmp_path)
    assert done.returncode == 1
    said = done.stdout + done.stderr
    assert str(tmp_path / "rules") in said
    assert "--rules" in said and "BRIDGE_RULES" in said and "ticketbridge init" in said
    assert "Traceback" not in said


def test_the_quickstart_from_what_init_wrote(home):
    with server_process(
        rules=None, templates=None, db=None, cwd=home, log=home / "serve.log"
    ) as server:
        # the README's curl
        response = httpx.post(
            f"{server.url}/hooks/contact-form",
            data=QUICKSTART_FORM,
            headers={"X-Form-Token": "quickstart-token"},
        )
        assert response.status_code == 202, response.text
        event_id = response.json()["event_id"]

        def settled() -> dict[str, object] | None:
            detail = ticketbridge_json("show", event_id, cwd=home)
            return detail if detail["status"] != "accepted" else None

        detail = poll(settled, what="the curl's event to be delivered")
        assert detail["status"] == "done", detail["deliveries"]
        assert detail["deliveries"][0]["action"]["contact"]["name"] == "Ana Lima"

        sample = "rules/samples/stripe/dispute-created.json"
        sent = ticketbridge("send", "stripe", sample, "--url", server.url, cwd=home)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("202 Accepted")
        stripe_id = json.loads(sent.stdout.splitlines()[-1])["event_id"]
        poll(
            lambda: ticketbridge_json("show", stripe_id, cwd=home)["status"] == "done",
            what="the sent dispute to be delivered",
        )

        listed = ticketbridge("events", cwd=home)
        assert listed.returncode == 0
        assert event_id in listed.stdout and stripe_id in listed.stdout
        shown = ticketbridge("show", event_id, cwd=home)
        assert shown.returncode == 0 and "contact-form-ticket" in shown.stdout

        replayed = ticketbridge("replay", stripe_id, cwd=home)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        deliveries = poll(
            lambda: (
                d
                if len(d := ticketbridge_json("show", stripe_id, cwd=home)["deliveries"]) == 2
                and all(x["status"] == "done" for x in d)
                else None
            ),
            what="the replayed dispute to be delivered again",
        )
        assert {d["rule"] for d in deliveries} == {"stripe-dispute-opened"}


def test_a_reader_that_stops_early_gets_no_traceback(home):
    """`ticketbridge check | head -1`: the reader is gone before the command writes (its end
    of the pipe is closed first, so that the write fails whatever the pipe's buffer holds)."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [*ticketbridge_command(), "check"],
            cwd=home,
            stdout=write,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 1
    assert b"Traceback" not in done.stderr and b"BrokenPipeError" not in done.stderr
