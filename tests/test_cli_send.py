"""`ticketbridge send` as a user runs it, against a recording server on 127.0.0.1: what goes on
the wire, what is printed, the exit codes, and that no secret is printed."""

from __future__ import annotations

import hashlib
import hmac
import io
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.cli import main
from tests.helpers import free_port, serving, write_tree

GITHUB_SECRET = "gh-send-secret-0451"
TOKEN = "query-token-7f3e1b"
CONFIG = {
    "rules/main.yaml": """
        sources:
          github:
            verify: {preset: github, secrets: ["${GH_SECRET}", "gh-older-secret"]}
          jotform:
            verify: {type: token, location: "query:token", values: ["${JF_TOKEN}"]}
            body: form
          open:
            verify: {type: none}
            path: /in/open
    """,
    "templates/.keep": "",
}
ISSUE = b'{"action":"opened","issue":{"number":17,"title":"Broken on Safari"}}\n'


@dataclass
class Recorder:
    """The requests the fake service got, and what it answers next."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    status: int = 202
    answer: bytes = b'{"event_id":"evt_1","status":"accepted"}'

    async def hook(self, request: Request) -> Response:
        self.seen.append(
            {
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers),
                "body": await request.body(),
            }
        )
        return Response(self.answer, status_code=self.status, media_type="application/json")


@pytest.fixture
def service() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    app = Starlette(routes=[Route("/{path:path}", recorder.hook, methods=["POST"])])
    with serving(app, what="the recording service") as url:
        yield url, recorder


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("GH_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("JF_TOKEN", TOKEN)
    root = write_tree(tmp_path, CONFIG)
    (root / "issue.json").write_bytes(ISSUE)
    (root / "form.txt").write_bytes(b"name=Ana&message=Hello")
    return root


def send(tree, *args: str) -> int:
    config = ["--rules", str(tree / "rules"), "--templates", str(tree / "templates")]
    return main(["send", *args, *config])


def test_the_file_goes_byte_for_byte_signed_as_github_with_a_fresh_delivery_each_time(
    tree, service, capsys
):
    url, recorder = service
    for _ in range(2):
        code = send(
            tree,
            "github",
            str(tree / "issue.json"),
            "--url",
            url,
            "--header",
            "X-GitHub-Event: issues",
        )
        assert code == 0
    first, second = recorder.seen
    assert first["path"] == "/hooks/github"
    assert first["body"] == ISSUE
    assert first["headers"]["content-type"] == "application/json"
    assert first["headers"]["x-github-event"] == "issues"
    expected = hmac.new(GITHUB_SECRET.encode(), ISSUE, hashlib.sha256).hexdigest()
    assert first["headers"]["x-hub-signature-256"] == f"sha256={expected}"
    assert first["headers"]["x-github-delivery"] != second["headers"]["x-github-delivery"]
    out, err = capsys.readouterr()
    assert out.splitlines() == ["202 Accepted", '{"event_id":"evt_1","status":"accepted"}'] * 2
    assert err.splitlines() == [f"POST {url}/hooks/github"] * 2
    assert GITHUB_SECRET not in out + err and expected not in out + err


def test_stdin_is_read_when_the_file_is_a_dash(tree, service, monkeypatch):
    url, recorder = service
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b'{"from":"stdin"}')))
    assert send(tree, "open", "-", "--url", url) == 0
    (request,) = recorder.seen
    assert request["path"] == "/in/open"  # the source's own path
    assert request["body"] == b'{"from":"stdin"}'


def test_url_is_the_base_url_its_path_and_query_are_kept(tree, service):
    url, recorder = service
    assert send(tree, "open", str(tree / "issue.json"), "--url", f"{url}/prefix/?tenant=7") == 0
    (request,) = recorder.seen
    assert (request["path"], request["query"]) == ("/prefix/in/open", "tenant=7")


def test_a_query_token_is_sent_but_never_printed(tree, service, capsys):
    url, recorder = service
    recorder.answer = f'{{"echo": "{TOKEN}"}}'.encode()  # a service that echoes it back
    assert send(tree, "jotform", str(tree / "form.txt"), "--url", url) == 0
    (request,) = recorder.seen
    assert urllib.parse.parse_qs(request["query"]) == {"token": [TOKEN]}
    assert request["headers"]["content-type"] == "application/x-www-form-urlencoded"
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    assert f"POST {url}/hooks/jotform?token=[redacted]" in err
    assert '"echo": "[redacted]"' in out


def test_any_answer_but_a_2xx_exits_1_with_its_status_and_body(tree, service, capsys):
    url, recorder = service
    recorder.status = 401
    recorder.answer = b'{"error":"signature_invalid","detail":"no signature matched"}'
    assert send(tree, "github", str(tree / "issue.json"), "--url", url) == 1
    assert capsys.readouterr().out.splitlines() == [
        "401 Unauthorized",
        '{"error":"signature_invalid","detail":"no signature matched"}',
    ]
    recorder.status, recorder.answer = 200, b'{"event_id":"evt_1","status":"duplicate"}'
    assert send(tree, "github", str(tree / "issue.json"), "--url", url) == 0


def test_a_service_that_cannot_be_reached_is_one_line_and_exit_1(tree, capsys):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert send(tree, "jotform", str(tree / "form.txt"), "--url", url) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"POST {url}/hooks/jotform?token=[redacted]"
    assert len(lines) == 2 and lines[1].startswith(
        f"ticketbridge: cannot reach {url}/hooks/jotform"
    )
    assert "Traceback" not in err and TOKEN not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "issue.json"], "no source named 'nope' (have: github, jotform, open)"),
        (["github", "missing.json"], "cannot read"),
        (["github", "issue.json", "--header", "no-colon"], "is not NAME:VALUE"),
        (["github", "issue.json", "--header", "X-Name: José"], "an ASCII NAME:VALUE"),
        (["github", "issue.json", "--header", "X Name: a"], "an ASCII NAME:VALUE"),
        (["github", "issue.json", "--url", "ftp://x"], "is not an http(s) base URL"),
        (["github", "issue.json", "--url", "http://h:port"], "is not an http(s) base URL"),
        (
            ["github", "issue.json", "--header", "X-Hub-Signature-256: sha256=00"],
            "the header x-hub-signature-256 is what the signer writes",
        ),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(tree, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tree)
    assert send(tree, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("ticketbridge send: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_missing_arguments_are_argparse_usage_errors(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["send", "github"])
    assert caught.value.code == 2
    assert "payload" in capsys.readouterr().err


def test_a_configuration_with_problems_exits_1(tree, capsys):
    (tree / "rules/broken.yaml").write_text("sources:\n  other: {verify: {type: nope}}\n")
    assert send(tree, "github", str(tree / "issue.json")) == 1
    assert "broken.yaml" in capsys.readouterr().out


def test_a_configured_token_that_cannot_be_a_header_is_refused_without_printing_it(
    tree, capsys, monkeypatch
):
    monkeypatch.setenv("FORM_TOKEN", "tökén-секрет")
    (tree / "rules/form.yaml").write_text(
        "sources:\n  form:\n    verify:\n"
        '      {type: token, location: "header:X-Form-Token", values: ["${FORM_TOKEN}"]}\n'
    )
    assert send(tree, "form", str(tree / "form.txt")) == 2
    err = capsys.readouterr().err
    assert "header 'x-form-token'" in err and "секрет" not in err
