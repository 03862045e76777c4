"""Body parsers: raw bytes -> the payload templates see as `body` (pure functions).

Which parser runs is the source's `body` setting, or the Content-Type when it has none:
JSON, urlencoded form, or multipart form. Everything a sender can get wrong is a
RejectedRequest (400 for undecodable bytes, 415 for a content type the source cannot read).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from bridge.exceptions import RejectedRequest

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


def _is_json_type(media_type: str) -> bool:
    return media_type in ("application/json", "text/json") or media_type.endswith("+json")


def body_mode(setting: str | None, content_type: str | None) -> str:
    """json | form | multipart: the configured mode, else the one the Content-Type names."""
    if setting:
        return setting
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if not media_type or _is_json_type(media_type):
        return "json"
    if media_type == FORM:
        return "form"
    if media_type == MULTIPART:
        return "multipart"
    raise RejectedRequest(
        415, "unsupported_media_type", f"cannot read a body of type {media_type!r}"
    )


def parse_body(raw: bytes, *, mode: str, content_type: str | None, max_depth: int) -> Any:
    if mode == "json":
        return parse_json(raw, max_depth=max_depth)
    if mode == "form":
        return _collapse(parse_form(raw))
    if mode == "multipart":
        return _collapse(parse_multipart(raw, content_type))
    kind, _, field = mode.partition(":")
    if kind in ("form_json_field", "multipart_json_field") and field:
        fields = (
            parse_form(raw) if kind == "form_json_field" else parse_multipart(raw, content_type)
        )
        for name, value in fields:
            if name == field and isinstance(value, str):
                return parse_json(value.encode("utf-8"), max_depth=max_depth)
        raise RejectedRequest(400, "missing_field", f"the form has no field {field!r}")
    raise RejectedRequest(415, "unsupported_media_type", f"body mode {mode!r} is not supported")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedRequest(
            400, "invalid_utf8", f"body is not valid UTF-8 (byte {exc.start})"
        ) from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes, *, max_depth: int) -> Any:
    text = _decode(raw)
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise RejectedRequest(400, "invalid_json", "body is empty")
    # json.loads recurses: refuse absurd nesting before it can blow the stack, and check the
    # real depth afterwards only when the bracket count says it could be too deep
    brackets = raw.count(b"{") + raw.count(b"[")
    if brackets > 50_000:
        _check_depth_text(text, max_depth)
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        detail = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
        raise RejectedRequest(400, "invalid_json", detail) from None
    if brackets > max_depth:
        _check_depth(value, max_depth)
    return value


def _check_depth_text(text: str, max_depth: int) -> None:
    """Bracket depth of JSON text, skipping strings: a cheap pre-check before json.loads."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise RejectedRequest(400, "too_deep", f"JSON nested deeper than {max_depth}")
        elif char in "]}":
            depth -= 1


def _check_depth(value: Any, max_depth: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                raise RejectedRequest(400, "too_deep", f"JSON nested deeper than {max_depth}")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def parse_form(raw: bytes) -> list[tuple[str, str]]:
    text = _decode(raw)
    try:
        return urllib.parse.parse_qsl(
            text, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=10_000
        )
    except UnicodeDecodeError:
        raise RejectedRequest(400, "invalid_utf8", "form field is not valid UTF-8") from None
    except ValueError as exc:
        raise RejectedRequest(400, "invalid_form", str(exc)) from None


def parse_multipart(raw: bytes, content_type: str | None) -> list[tuple[str, Any]]:
    """Text fields as strings; file parts as {filename, content_type, size} (contents dropped)."""
    _, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if not boundary:
        raise RejectedRequest(400, "invalid_multipart", "Content-Type has no boundary")
    fields: list[tuple[str, Any]] = []
    part: dict[str, Any] = {}
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        part.clear()
        part.update(headers={}, data=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        part["headers"][bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part["data"].extend(data[start:end])

    def on_part_end() -> None:
        disposition, options = parse_options_header(
            part["headers"].get(b"content-disposition", b"")
        )
        if disposition != b"form-data" or b"name" not in options:
            return
        name = _decode(options[b"name"])
        data = bytes(part["data"])
        if b"filename" in options:
            fields.append(
                (
                    name,
                    {
                        "filename": options[b"filename"].decode("utf-8", "replace"),
                        "content_type": part["headers"].get(b"content-type", b"").decode("latin-1"),
                        "size": len(data),
                    },
                )
            )
        else:
            fields.append((name, _decode(data)))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(raw)
        parser.finalize()
    except MultipartParseError as exc:
        raise RejectedRequest(400, "invalid_multipart", str(exc)) from None
    return fields


def _collapse(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Pairs -> a mapping; a key given more than once keeps every value, as a list."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            existing = out[key]
            if isinstance(existing, list):
                existing.append(value)
            else:
                out[key] = [existing, value]
        else:
            out[key] = value
    return out
