"""The Jinja filters ticketbridge adds (DESIGN §2.5): e164, money, datetime, tojson, fromjson.

Pure functions of their arguments. A value they cannot handle raises `FilterError` with a
message that names the filter and the value; rendering turns it into a `RenderError`.
Absent input (None or a blank string) gives "" from e164, money and datetime, so an optional
payload field renders as "not given" instead of failing the whole delivery.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import babel
import babel.numbers
from jinja2 import Undefined

from bridge import phones

ISO = "iso"
_MS_THRESHOLD = 100_000_000_000  # |epoch| at or above this is milliseconds (year 5138 in s)


class FilterError(ValueError):
    """A filter was given a value it cannot turn into what it promises."""


def e164(value: Any, region: str = phones.NO_REGION, strict: bool = False) -> str:
    """A phone number (int or text with spaces, dashes, parentheses) as E.164: "+56912345678".

    `region` (ISO 3166 code) is the default for numbers written without a leading +; without
    one ("ZZ"), bare digits are read as an international number without its +. Any number
    phonenumbers calls possible is accepted; `strict` (true or false, nothing else) also
    demands a valid one. The reading itself is bridge.phones.to_e164."""
    if _absent(value):
        return ""
    strict = _defined(strict)
    if not isinstance(strict, bool):
        raise FilterError(f"e164: strict must be true or false, not {strict!r}")
    try:
        return phones.to_e164(value, str(_defined(region)), strict=strict)
    except phones.PhoneError as exc:
        raise FilterError(f"e164: {exc}") from None


def money(amount_minor: Any, currency: str, locale: str = "en_US") -> str:
    """An amount in minor units (cents; whole pesos for CLP) formatted for `locale`:
    money(4200, "USD") == "$42.00", money(4200, "CLP", "es_CL") == "$4.200"."""
    if _absent(amount_minor):
        return ""
    code = str(_defined(currency)).strip().upper()
    try:
        babel.numbers.validate_currency(code)
    except babel.numbers.UnknownCurrencyError:
        raise FilterError(f"money: unknown currency {currency!r}") from None
    minor = _minor_units(amount_minor)
    try:
        where = babel.Locale.parse(str(locale).replace("-", "_"))
    except (ValueError, TypeError, babel.UnknownLocaleError):
        raise FilterError(f"money: unknown locale {locale!r}") from None
    precision = babel.numbers.get_currency_precision(code)
    return babel.numbers.format_currency(minor.scaleb(-precision), code, locale=where)


def datetime(value: Any, fmt: str = "%Y-%m-%d %H:%M", tz: str = "UTC") -> str:
    """Epoch seconds, epoch milliseconds or ISO-8601 text, shown in time zone `tz` with strftime
    format `fmt` ("iso" gives ISO-8601). Naive input is UTC."""
    if _absent(value):
        return ""
    try:
        zone = zoneinfo.ZoneInfo(str(_defined(tz)))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise FilterError(f"datetime: unknown time zone {tz!r}") from None
    moment = _moment(value).astimezone(zone)
    if fmt == ISO:
        return moment.isoformat()
    try:
        return moment.strftime(str(_defined(fmt)))
    except ValueError as exc:
        raise FilterError(f"datetime: bad format {fmt!r}: {exc}") from None


def tojson(value: Any, indent: int | None = None) -> str:
    """JSON text, non-ASCII kept as is and nothing HTML-escaped (replaces Jinja's tojson)."""
    return json.dumps(_defined(value), ensure_ascii=False, indent=indent, default=_json_default)


def fromjson(text: Any) -> Any:
    """Parse JSON text (a form field that carries JSON, for instance)."""
    text = _defined(text)
    if not isinstance(text, str | bytes | bytearray):
        raise FilterError(f"fromjson: expected JSON text, got {type(text).__name__}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FilterError(f"fromjson: invalid JSON ({exc})") from None


FILTERS: Mapping[str, Callable[..., Any]] = {
    "e164": e164,
    "money": money,
    "datetime": datetime,
    "tojson": tojson,
    "fromjson": fromjson,
}


def _defined(value: Any) -> Any:
    """Raise the undefined-variable error itself rather than a confusing filter error."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _absent(value: Any) -> bool:
    value = _defined(value)
    return value is None or (isinstance(value, str) and not value.strip())


def _minor_units(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise FilterError(f"money: {value!r} is not an amount in minor units")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise FilterError(f"money: {value!r} is not a number") from None
    if not amount.is_finite() or amount != amount.to_integral_value():
        raise FilterError(f"money: {value!r} is not a whole number of minor units")
    return amount.quantize(Decimal(1))


def _moment(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FilterError(f"datetime: {value!r} is not a time")
    if isinstance(value, str):
        text = value.strip()
        try:
            number: float | None = float(text)
        except ValueError:
            number = None
        if number is None:
            try:
                parsed = dt.datetime.fromisoformat(text)
            except ValueError:
                raise FilterError(
                    f"datetime: {value!r} is neither epoch seconds, epoch ms nor ISO-8601"
                ) from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        value = number
    seconds = value / 1000 if abs(value) >= _MS_THRESHOLD else value
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise FilterError(f"datetime: {value!r} is out of range") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise FilterError(f"tojson: a {type(value).__name__} cannot be written as JSON")
