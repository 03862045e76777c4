"""Every secret of the full example configuration set, and none of them shows anywhere a user
or an attacker can look: admin JSON, admin pages, the log, error answers (DESIGN §4.1, §8).

The helpdesks are one local fake that echoes every request header back in its error
message, the worst a real API could do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.helpers import EXAMPLE, poll, running_server, serving

ADMIN = "admin-token-4f1e-very-secret"
SECRETS = {
    name: f"{name.lower().replace('_', '-')}-s3cr3t-{index:02d}"
    for index, name in enumerate(
        [
            "AWAL_HMAC_SECRET",
            "CLOUDCHAT_TOKEN",
            "CRM_HOOK_PASSWORD",
            "FORM_TOKEN",
            "GLASSIX_API_KEY",
            "GLASSIX_API_SECRET",
            "HELPDESK_TOKEN",
            "STRIPE_VAMBE_WEBHOOK_SECRET",
            "STRIPE_WEBHOOK_SECRET",
            "STRIPE_WEBHOOK_SECRET_OLD",
            "TYPEFORM_SECRET",
            "VAMBE_API_KEY",
            "WEBSITE_FORM_TOKEN",
        ]
    )
}


async def echo(request: Request) -> JSONResponse:
    """A helpdesk that refuses everything and repeats every header it was sent."""
    seen = "; ".join(f"{k}={v}" for k, v in request.headers.items())
    return JSONResponse({"message": f"refused: {seen}", "query": str(request.url)}, 422)


@pytest.fixture(scope="module")
def helpdesk():
    app = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "PATCH"])])
    with serving(app, what="the echoing helpdesk") as url:
        yield url


def all_the_names(rules: Path) -> set[str]:
    names = set()
    for path in rules.glob("*.yaml"):
        names |= set(re.findall(r"\$\{([A-Z_]+)", path.read_text()))
    return names


@pytest.fixture(scope="module")
def server(tmp_path_factory, helpdesk):
    root = tmp_path_factory.mktemp("secrets")
    rules = root / "rules"
    shutil.copytree(EXAMPLE / "rules", rules)
    # Glassix's address comes from the workspace name: point it at the fake like the others
    glassix = rules / "glassix.yaml"
    text = glassix.read_text()
    assert "    # base_url: https://<workspace>" in text
    glassix.write_text(
        text.replace("    # base_url: https://<workspace>", f'    base_url: "{helpdesk}" #')
    )
    names = all_the_names(rules)
    urls = {name: helpdesk for name in names if name.endswith(("_BASE_URL", "_URL"))}
    assert set(SECRETS) <= names, "the example configuration names a secret this test misses"
    env = {**urls, **SECRETS, "BRIDGE_ADMIN_TOKEN": ADMIN, "GLASSIX_WORKSPACE": "acme"}
    with running_server(
        rules=rules,
        templates=EXAMPLE / "templates",
        db=f"sqlite:///{root / 'bridge.db'}",
        env=env,
        log=root / "server.log",
    ) as url:
        yield url, root / "server.log"


def stripe_headers(body: bytes, secret: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    return {"Stripe-Signature": f"t={stamp},v1={signature.hexdigest()}"}


def typeform_headers(body: bytes, secret: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()}


def sample(source: str, name: str) -> bytes:
    return (EXAMPLE / "rules" / "samples" / source / name).read_bytes()


def send_everything(url: str) -> list[str]:
    """Webhooks of every example source, signed right (and some wrong); the texts answered."""
    answers = []
    basic = base64.b64encode(f"hooks:{SECRETS['CRM_HOOK_PASSWORD']}".encode()).decode()
    requests = [
        (
            "contact-form",
            sample("contact-form", "hello.json"),
            {"X-Form-Token": SECRETS["FORM_TOKEN"]},
        ),
        (
            "website-form",
            sample("website-form", "support-request.json"),
            {"X-Form-Token": SECRETS["WEBSITE_FORM_TOKEN"]},
        ),
        ("crm", sample("crm", "deal-created.json"), {"Authorization": f"Basic {basic}"}),
        (
            "stripe",
            body := sample("stripe", "dispute-created.json"),
            stripe_headers(body, SECRETS["STRIPE_WEBHOOK_SECRET"]),
        ),
        (
            "stripe-vambe",
            body2 := sample("stripe-vambe", "dispute-created.json"),
            stripe_headers(body2, SECRETS["STRIPE_VAMBE_WEBHOOK_SECRET"]),
        ),
        (
            "typeform",
            body3 := sample("typeform", "form-response.json"),
            typeform_headers(body3, SECRETS["TYPEFORM_SECRET"]),
        ),
        # wrong credentials: error answers must not give a secret away either
        ("contact-form", b"{}", {"X-Form-Token": SECRETS["WEBSITE_FORM_TOKEN"]}),
        ("stripe", body, stripe_headers(body, "whsec_wrong")),
        ("crm", b"{}", {"Authorization": "Basic " + base64.b64encode(b"hooks:nope").decode()}),
    ]
    for source, content, headers in requests:
        response = httpx.post(
            f"{url}/hooks/{source}",
            content=content,
            headers={"Content-Type": "application/json", **headers},
        )
        assert response.status_code in (200, 202, 401), (source, response.text)
        answers.append(response.text)
    return answers


def admin_json(url: str) -> list[str]:
    client = httpx.Client(base_url=f"{url}/admin/api", headers={"Authorization": f"Bearer {ADMIN}"})
    with client:
        texts = []
        events = client.get("/events", params={"limit": 500}).json()["events"]
        for event in events:
            texts.append(client.get(f"/events/{event['id']}").text)
        for path in ("/events", "/deliveries", "/deliveries?status=dead", "/providers"):
            texts.append(client.get(path).text)
        texts.append(client.get("/events", params={"limit": "x" + SECRETS["FORM_TOKEN"]}).text)
        return texts


def test_no_secret_shows_in_answers_admin_json_pages_or_logs(server):
    url, log = server
    answers = send_everything(url)

    def settled() -> bool:
        client = httpx.Client(headers={"Authorization": f"Bearer {ADMIN}"})
        with client:
            events = client.get(f"{url}/admin/api/events", params={"limit": 500}).json()["events"]
        return len(events) >= 6 and all(e["status"] != "accepted" for e in events)

    poll(settled, timeout=20, what="every event to be routed and tried")
    texts = answers + admin_json(url) + admin_pages(url) + [log.read_text()]
    everything = "\n".join(texts)
    # the fake did see them and said them back (the test would prove nothing otherwise) ...
    assert "refused:" in everything and "[redacted]" in everything
    # ... and none of them came out
    for name, value in {**SECRETS, "BRIDGE_ADMIN_TOKEN": ADMIN}.items():
        assert value not in everything, f"{name} leaked"
    basic = base64.b64encode(f"hooks:{SECRETS['CRM_HOOK_PASSWORD']}".encode()).decode()
    assert basic not in everything


def admin_pages(url: str) -> list[str]:
    """Every HTML page, logged in (an empty list while the pages do not exist)."""
    with httpx.Client(base_url=url, follow_redirects=True) as browser:
        login = browser.post("/admin/login", data={"token": ADMIN})
        if login.status_code == 404:
            return []
        pages = [login.text]
        for path in ("/admin", "/admin/events", "/admin/dead", "/admin/providers"):
            pages.append(browser.get(path).text)
        events = httpx.get(
            f"{url}/admin/api/events", headers={"Authorization": f"Bearer {ADMIN}"}
        ).json()["events"]
        for event in events:
            pages.append(browser.get(f"/admin/events/{event['id']}").text)
        pages.append(json.dumps(dict(browser.cookies)))
        return pages
