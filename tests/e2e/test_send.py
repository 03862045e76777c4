"""`ticketbridge send` against a real `ticketbridge serve`: for every preset and every other
verification type, what the command signs is what the server accepts (202), and a wrong secret
in the sender's configuration is a 401 and exit 1.

One server holds one source per scheme. The sender reads the same rules directory, with the
secrets it takes from the environment either right or wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from bridge.cli import main
from bridge.sources.presets import PRESETS
from tests.helpers import EXAMPLE, running_server, settled_event, show_event, write_tree


def whsec(text: str) -> str:
    return "whsec_" + base64.b64encode(text.encode()).decode()


# source name -> (its `verify` and other settings, the secret the server holds)
SOURCES: dict[str, tuple[str, str]] = {
    **{
        name: (
            f'verify: {{preset: {name}, secrets: ["${{SECRET_{n}}}"]}}'
            + (", split: true" if name == "hubspot-v3" else ""),
            whsec(f"{name} secret") if name == "standard" else f"{name}-secret-{n}",
        )
        for n, name in enumerate(sorted(PRESETS))
    },
    "hmac-sha512": (
        "verify: {type: hmac, header: X-Signature, algorithm: sha512, encoding: base64, "
        'message: "{method} {url} {body}", secrets: ["${SECRET_HMAC}"]}',
        "custom-hmac-secret",
    ),
    "token-header": (
        'verify: {type: token, location: "header:X-Form-Token", values: ["${SECRET_TH}"]}',
        "header-token-1",
    ),
    "token-query": (
        'verify: {type: token, location: "query:token", values: ["${SECRET_TQ}"]}',
        "query-token-2",
    ),
    "token-form": (
        'verify: {type: token, location: "form:secret", values: ["${SECRET_TF}"]}, body: form',
        "form-token-3",
    ),
    "token-multipart": (
        'verify: {type: token, location: "form:secret", values: ["${SECRET_TM}"]}, body: multipart',
        "multipart-token-4",
    ),
    "basic": (
        'verify: {type: basic, username: hooks, passwords: ["${SECRET_BASIC}"]}',
        "basic-password-5",
    ),
    "twilio": (
        "verify: {type: twilio, public_url: https://helpdesk.example.com/hooks/twilio, "
        'secrets: ["${SECRET_TWILIO}"]}',
        "twilio-auth-token-6",
    ),
    "twilio-direct": ('verify: {type: twilio, secrets: ["${SECRET_TWD}"]}', "twilio-token-7"),
    "none": ("verify: {type: none}", ""),
}


def variable(source: str) -> str | None:
    line = SOURCES[source][0]
    return line.split("${", 1)[1].split("}", 1)[0] if "${" in line else None


ENV = {variable(name): secret for name, (_, secret) in SOURCES.items() if variable(name)}
SIGNED = [name for name in SOURCES if variable(name)]

CONFIG = "sources:\n" + "".join(
    f"  {name}: {{{settings}}}\n" for name, (settings, _) in SOURCES.items()
)

BOUNDARY = "send-e2e-boundary"


def body_for(source: str, tag: str) -> bytes:
    """A body the source reads, with ids unique to `source` and `tag` for every dedupe key."""
    ident = f"{source}-{tag}"
    if source == "hubspot-v3":
        return json.dumps([{"eventId": ident, "subscriptionType": "contact.creation"}]).encode()
    if source in ("token-form", "twilio", "twilio-direct"):
        return f"MessageSid=SM{ident}&Body=Hello+from+{tag}&From=%2B14155550100".encode()
    if source == "token-multipart":
        return (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="message"\r\n\r\n'
            f"Hello from {ident}\r\n--{BOUNDARY}--\r\n"
        ).encode()
    return json.dumps(
        {
            "id": ident,
            "event_id": ident,
            "eventId": ident,
            "payload": {"id": ident},
            "data": {"id": ident.upper()},
            "type": "test.event",
        },
        separators=(",", ":"),
    ).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("send")
    root = write_tree(tmp, {"rules/main.yaml": CONFIG, "templates/.keep": ""})
    db = f"sqlite:///{tmp / 'bridge.db'}"
    with running_server(
        rules=root / "rules", templates=root / "templates", db=db, env=ENV, log=tmp / "log"
    ) as url:
        yield url, root, db


@pytest.fixture
def sender_env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def send(server, source: str, body: bytes, *extra: str) -> int:
    url, root, _ = server
    path = root / f"{source}-{hashlib.sha256(body).hexdigest()[:12]}.payload"
    path.write_bytes(body)
    config = ["--rules", str(root / "rules"), "--templates", str(root / "templates")]
    return main(["send", source, str(path), "--url", url, *config, *extra])


def answer(capsys) -> tuple[str, dict]:
    status, body = capsys.readouterr().out.split("\n", 1)
    return status, json.loads(body)


def test_every_preset_has_a_source():
    assert set(PRESETS) <= set(SOURCES)


@pytest.mark.parametrize("source", list(SOURCES))
def test_what_send_signs_the_server_accepts(server, sender_env, capsys, source):
    assert send(server, source, body_for(source, "ok")) == 0
    status, body = answer(capsys)
    assert status == "202 Accepted"
    assert body["status"] == "accepted"
    if source == "hubspot-v3":
        assert len(body["event_ids"]) == 1 and body["duplicates"] == []


@pytest.mark.parametrize("source", SIGNED)
def test_a_wrong_secret_in_the_senders_config_is_401_and_exit_1(server, sender_env, capsys, source):
    wrong = whsec("not the secret") if source == "standard" else "not-the-secret"
    sender_env.setenv(variable(source), wrong)
    assert send(server, source, body_for(source, "wrong")) == 1
    out, err = capsys.readouterr()
    status, body = out.split("\n", 1)
    assert status == "401 Unauthorized"
    assert json.loads(body)["error"] == "signature_invalid"
    assert wrong not in out + err and ENV[variable(source)] not in out + err


def test_a_second_send_of_a_body_id_is_a_duplicate_but_a_delivery_header_is_fresh(
    server, sender_env, capsys
):
    stripe = body_for("stripe", "twice")
    assert send(server, "stripe", stripe) == 0
    assert send(server, "stripe", stripe) == 0
    first, second = capsys.readouterr().out.strip().split("\n")[1::2]
    assert json.loads(second) == {"event_id": json.loads(first)["event_id"], "status": "duplicate"}

    github = body_for("github", "twice")
    assert send(server, "github", github, "--header", "X-GitHub-Event: issues") == 0
    assert send(server, "github", github, "--header", "X-GitHub-Event: issues") == 0
    out = capsys.readouterr().out
    assert out.count("202 Accepted") == 2
    ids = [json.loads(line)["event_id"] for line in out.strip().split("\n")[1::2]]
    assert ids[0] != ids[1]
    _, _, db = server
    detail = show_event(capsys, db, ids[1])
    assert detail["headers"]["x-github-event"] == "issues"
    assert detail["headers"]["x-hub-signature-256"] == "[redacted]"
    assert detail["dedupe_key"] == detail["headers"]["x-github-delivery"]


def test_a_given_delivery_header_makes_a_repeat_a_duplicate(server, sender_env, capsys):
    github = body_for("github", "same-delivery")
    for _ in range(2):
        assert send(server, "github", github, "--header", "X-GitHub-Delivery: d-1") == 0
    statuses = capsys.readouterr().out.strip().split("\n")[0::2]
    assert statuses == ["202 Accepted", "200 OK"]


def test_the_readme_send_against_the_example_configuration(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)  # the example's default secret
    monkeypatch.chdir(EXAMPLE)  # the README runs it from the checkout: ./rules, ./templates
    db = f"sqlite:///{tmp_path / 'bridge.db'}"
    with running_server(
        rules=EXAMPLE / "rules", templates=EXAMPLE / "templates", db=db, log=tmp_path / "log"
    ) as url:
        command = ["send", "stripe", "rules/samples/stripe/dispute-created.json", "--url", url]
        assert main(command) == 0
        status, body = answer(capsys)
        assert (status, body["status"]) == ("202 Accepted", "accepted")
        detail = settled_event(capsys, db, body["event_id"])
        assert detail["status"] == "done"
        assert detail["deliveries"][0]["rule"] == "stripe-dispute-opened"
        # the sample's body.id is the dedupe key: the same file again is a duplicate
        assert main(command) == 0
        assert answer(capsys) == ("200 OK", {"event_id": body["event_id"], "status": "duplicate"})
