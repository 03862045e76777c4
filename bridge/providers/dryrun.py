"""What the adapters' dry-run stubs share (`ticketbridge try`; see Provider.dry_run_answer)."""

from __future__ import annotations

import json
from typing import Any

import httpx


def sent_json(request: httpx.Request) -> Any:
    """The JSON a request carries; None when it has no body or the body is not JSON."""
    if not request.content:
        return None
    try:
        return json.loads(request.content)
    except ValueError:
        return None


def sent_object(request: httpx.Request) -> dict[str, Any]:
    """The JSON object a request carries; empty when it carries something else."""
    body = sent_json(request)
    return body if isinstance(body, dict) else {}
