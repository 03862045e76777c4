"""`ticketbridge vambe-stages`: the account's pipelines and stages, to find a stage_id."""

from __future__ import annotations

import httpx
import pytest
import respx

from bridge.cli import main
from tests.helpers import write_tree

KEY = "vk_cli_SecretKey_4242"
FAILED = "Vambe did not list the pipelines (provider vambe-cl)"
ONE = "http://127.0.0.1:5981"
TWO = "http://127.0.0.1:5982"

CONFIG = f"""
providers:
  vambe-cl:
    type: vambe
    base_url: {ONE}
    api_key: "${{VAMBE_API_KEY}}"
    phone_id: qr-main
  vambe-mx:
    type: vambe
    base_url: {TWO}
    api_key: "${{VAMBE_API_KEY}}"
    channel: whatsapp
    phone_id: 1234567890
  audit: {{type: log}}
"""

PIPELINES = [
    {
        "id": "550e8400-e29b-41d4-a716-446655440000",
        "name": "Support",
        "stages": [
            {"id": "650e8400-e29b-41d4-a716-446655440001", "name": "New"},
            {"id": "650e8400-e29b-41d4-a716-446655440002", "name": "Waiting on customer"},
        ],
    },
    {
        "id": "550e8400-e29b-41d4-a716-446655440100",
        "name": "Sales",
        "stages": [{"id": "650e8400-e29b-41d4-a716-446655440101", "name": "New"}],
    },
]


@pytest.fixture
def args(tmp_path, monkeypatch):
    monkeypatch.setenv("VAMBE_API_KEY", KEY)

    def make(config: str = CONFIG) -> list[str]:
        write_tree(tmp_path, {"rules/main.yaml": config})
        (tmp_path / "templates").mkdir(exist_ok=True)
        return ["--rules", str(tmp_path / "rules"), "--templates", str(tmp_path / "templates")]

    return make


@respx.mock
def test_lists_pipeline_stage_name_and_id(args, capsys):
    route = respx.get(f"{TWO}/api/public/pipeline").mock(
        return_value=httpx.Response(200, json=PIPELINES)
    )
    assert main(["vambe-stages", "--provider", "vambe-mx", *args()]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "PIPELINE  STAGE                STAGE ID",
        "Support   New                  650e8400-e29b-41d4-a716-446655440001",
        "Support   Waiting on customer  650e8400-e29b-41d4-a716-446655440002",
        "Sales     New                  650e8400-e29b-41d4-a716-446655440101",
    ]
    assert route.calls.last.request.headers["x-api-key"] == KEY
    assert KEY not in out + err


@respx.mock
def test_the_only_vambe_provider_needs_no_name(args, capsys):
    respx.get(f"{ONE}/api/public/pipeline").mock(return_value=httpx.Response(200, json=[]))
    config = CONFIG.split("  vambe-mx:")[0]
    assert main(["vambe-stages", *args(config)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "provider vambe-cl: the account has no pipeline stages" in err


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            httpx.Response(401, json={"statusCode": 401, "message": f"Invalid key {KEY}"}),
            f"{FAILED}: HTTP 401: Invalid key [redacted]",
        ),
        (
            httpx.Response(500, json={"statusCode": 500, "message": "Internal server error"}),
            f"{FAILED}: HTTP 500: Internal server error",
        ),
        (
            httpx.ConnectError("connection refused"),
            f"{FAILED}: ConnectError: connection refused",
        ),
        (
            httpx.Response(200, json={"pipelines": []}),
            f"{FAILED}: Vambe answered GET /api/public/pipeline with something other than a list",
        ),
    ],
)
@respx.mock
def test_an_api_error_is_exit_1_with_a_clear_message_and_no_key(args, capsys, answer, expected):
    route = respx.get(f"{ONE}/api/public/pipeline")
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    assert main(["vambe-stages", "--provider", "vambe-cl", *args()]) == 1
    out, err = capsys.readouterr()
    assert err.strip() == f"ticketbridge: {expected}"
    assert KEY not in out + err


@pytest.mark.parametrize(
    ("extra", "config", "expected"),
    [
        (
            [],
            CONFIG,
            "several vambe providers (vambe-cl, vambe-mx): choose one with --provider",
        ),
        (
            ["--provider", "audit"],
            CONFIG,
            "no vambe provider named 'audit' (vambe providers: vambe-cl, vambe-mx)",
        ),
        (
            [],
            "providers:\n  audit: {type: log}\n",
            "the configuration has no provider of type vambe",
        ),
    ],
)
@respx.mock
def test_which_provider_is_asked(args, capsys, extra, config, expected):
    assert main(["vambe-stages", *extra, *args(config)]) == 1
    assert capsys.readouterr().err.strip() == f"ticketbridge: {expected}"
    assert len(respx.calls) == 0
