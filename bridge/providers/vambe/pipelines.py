"""A Vambe account's pipelines and their stages (GET /api/public/pipeline), read defensively.

Vambe answers a bare JSON array: `[{"id", "name", "description", "stages": [{"id", "name",
"description"}]}]`. A stage's id is what a ticket's `stage_id` takes; stage names are not
unique across pipelines, so a stage is shown with its pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Stage:
    id: str
    name: str


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    id: str
    name: str
    stages: tuple[Stage, ...]


def parse_pipelines(data: Any) -> list[Pipeline] | None:
    """The pipelines in Vambe's answer; None when the answer is not the documented array."""
    if not isinstance(data, list):
        return None
    return [_pipeline(item) for item in data if isinstance(item, dict)]


def _pipeline(item: dict[str, Any]) -> Pipeline:
    stages = item.get("stages")
    return Pipeline(
        id=str(item.get("id", "")),
        name=str(item.get("name", "")),
        stages=tuple(
            Stage(id=str(s.get("id", "")), name=str(s.get("name", "")))
            for s in (stages if isinstance(stages, list) else [])
            if isinstance(s, dict)
        ),
    )
