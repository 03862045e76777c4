import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import babel.numbers
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.exceptions import RenderError
from bridge.rendering.filters import FilterError, datetime, e164, fromjson, money, tojson
from bridge.rendering.templates import Templates

# -- e164 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+56 9 6123 4567", "ZZ", "+56961234567"),
        ("9 6123 4567", "CL", "+56961234567"),
        ("(2) 2123-4567", "cl", "+56221234567"),
        ("+1 (650) 253-0000", "ZZ", "+16502530000"),
        ("650-253-0000", "US", "+16502530000"),
        (56961234567, "ZZ", "+56961234567"),  # bare digits without a region: international
        ("56961234567", "ZZ", "+56961234567"),
        (961234567, "CL", "+56961234567"),
    ],
)
def test_e164_formats_valid_numbers(value: object, region: str, expected: str) -> None:
    assert e164(value, region) == expected


@pytest.mark.parametrize(
    ("value", "region"),
    [("12345", "CL"), ("not a phone", "CL"), ("+56 9 1234", "ZZ"), ("+99 123 456 789", "ZZ")],
)
def test_e164_rejects_invalid_numbers_naming_the_value(value: str, region: str) -> None:
    with pytest.raises(FilterError, match="e164") as caught:
        e164(value, region)
    assert repr(value) in str(caught.value)


def test_e164_national_number_without_region_is_an_error() -> None:
    with pytest.raises(FilterError, match="phone number"):
        e164("(2) 2123-4567")


def test_e164_rejects_non_text_values() -> None:
    with pytest.raises(FilterError):
        e164(True, "CL")
    with pytest.raises(FilterError):
        e164(["+56961234567"])


@pytest.mark.parametrize("value", [None, "", "   "])
def test_e164_absent_value_gives_empty_text(value: object) -> None:
    assert e164(value, "CL") == ""


# The Vambe document's own example (/work/shared/seeds/): possible, not valid for phonenumbers.
VAMBE_EXAMPLES = ["+56912345678", "56912345678", 56912345678, "+56 9 1234 5678"]


@pytest.mark.parametrize("value", VAMBE_EXAMPLES)
def test_e164_accepts_possible_numbers_such_as_vambes_example(value: object) -> None:
    assert e164(value, "CL") == "+56912345678"
    assert e164(value, "CL", False) == "+56912345678"


@pytest.mark.parametrize("value", VAMBE_EXAMPLES)
def test_e164_strict_also_demands_a_valid_number(value: object) -> None:
    with pytest.raises(FilterError) as caught:
        e164(value, "CL", strict=True)
    assert str(caught.value) == (
        f"e164: {value!r} is not a phone number (default region CL): "
        "possible, but not valid: no such range in phonenumbers' metadata"
    )
    assert e164("+56 9 6123 4567", "CL", True) == "+56961234567"  # a valid one passes


def test_e164_glassix_example_with_a_us_default() -> None:
    assert e164("7818469236", "US") == "+17818469236"
    assert e164("7818469236", "US", strict=True) == "+17818469236"


@pytest.mark.parametrize(
    ("value", "reason"), [("123", "too short"), ("call me", "it does not look like a phone number")]
)
def test_e164_impossible_numbers_are_errors_in_both_modes(value: str, reason: str) -> None:
    for strict in (False, True):
        with pytest.raises(FilterError) as caught:
            e164(value, "CL", strict=strict)
        assert (
            str(caught.value)
            == f"e164: {value!r} is not a phone number (default region CL): {reason}"
        )


@pytest.mark.parametrize("strict", ["true", 1, None])
def test_e164_strict_takes_a_boolean_only(strict: object) -> None:
    with pytest.raises(FilterError) as caught:
        e164("+56961234567", "CL", strict=strict)  # type: ignore[arg-type]
    assert str(caught.value) == f"e164: strict must be true or false, not {strict!r}"


@pytest.mark.parametrize("value", [None, ""])
def test_e164_absent_value_gives_empty_text_also_when_strict(value: object) -> None:
    assert e164(value, "CL", strict=True) == ""


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ body.phone | e164('CL') }}", "+56912345678"),
        ("{{ body.phone | e164('CL', strict=false) }}", "+56912345678"),
        ("{{ body.number | e164('CL') }}", "+56912345678"),
        ("{{ body.valid | e164('CL', strict=true) }}", "+56961234567"),
        ("{{ body.valid | e164('CL', true) }}", "+56961234567"),
        ("{{ body.missing | default('') | e164('CL', strict=true) }}", ""),
    ],
)
def test_e164_in_a_template(tmp_path: Path, template: str, expected: str) -> None:
    compiled = Templates(tmp_path).compile_string(template, name="phone")
    body = {"phone": "+56 9 1234 5678", "number": 56912345678, "valid": "9 6123 4567"}
    assert compiled.render({"body": body}) == expected


@pytest.mark.parametrize(
    "template",
    ["{{ body.phone | e164('CL', strict=true) }}", "{{ body.phone | e164('CL', true) }}"],
)
def test_e164_strict_in_a_template_is_a_render_error(tmp_path: Path, template: str) -> None:
    compiled = Templates(tmp_path).compile_string(template, name="phone")
    with pytest.raises(RenderError) as caught:
        compiled.render({"body": {"phone": "+56912345678"}})
    assert caught.value.message.startswith("e164: '+56912345678' is not a phone number")


_REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r))


@settings(max_examples=150, deadline=None)  # first use of a region loads its metadata
@given(
    region=st.sampled_from(_REGIONS),
    kind=st.sampled_from(
        [phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]
    ),
    style=st.sampled_from(
        [phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.INTERNATIONAL]
    ),
)
def test_e164_round_trip(region: str, kind: int, style: int) -> None:
    number = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(
        region
    )
    assert number is not None
    written = phonenumbers.format_number(number, style)
    expected = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert e164(written, region) == expected


# -- money ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((4200, "USD"), "$42.00"),
        ((4200, "usd"), "$42.00"),  # Stripe writes currencies in lower case
        ((4200, "CLP", "es_CL"), "$4.200"),  # zero-decimal: 4200 minor units are 4200 pesos
        ((4200, "JPY"), "¥4,200"),
        ((4200, "KWD"), "KWD4.200"),  # three decimals
        (("4200", "EUR", "de_DE"), "42,00\xa0€"),
        ((-150, "USD"), "-$1.50"),
        ((5, "USD"), "$0.05"),
        ((4200, "EUR", "es-CL"), "EUR42,00"),  # "es-CL" is read as es_CL
    ],
)
def test_money_formats_minor_units(args: tuple[object, ...], expected: str) -> None:
    assert money(*args) == expected  # type: ignore[arg-type]


def test_money_keeps_exact_digits_of_large_amounts() -> None:
    # float division would lose the last digits of this amount
    assert money(123456789012345678, "USD") == "$1,234,567,890,123,456.78"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((4200, "FOO"), "unknown currency 'FOO'"),
        ((4200, "USD", "xx_XX"), "unknown locale 'xx_XX'"),
        ((4200, "USD", "not a locale!"), "unknown locale"),
        (("42.5", "USD"), "whole number of minor units"),
        (("forty", "USD"), "not a number"),
        ((True, "USD"), "minor units"),
        ((float("nan"), "USD"), "whole number"),
    ],
)
def test_money_errors(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(FilterError, match=match):
        money(*args)  # type: ignore[arg-type]


def test_money_absent_amount_gives_empty_text() -> None:
    assert money(None, "USD") == ""


@settings(max_examples=200, deadline=None)  # first use of a locale loads its data
@given(
    amount=st.integers(min_value=-(10**12), max_value=10**12),
    currency=st.sampled_from(["USD", "EUR", "CLP", "JPY", "KWD"]),
    locale=st.sampled_from(["en_US", "es_CL", "de_DE", "ja_JP", "fr_FR"]),
)
def test_money_round_trip(amount: int, currency: str, locale: str) -> None:
    text = money(amount, currency, locale)
    symbol = babel.numbers.get_currency_symbol(currency, locale)
    number = text.replace(symbol, "").strip("\xa0\u202f ")
    precision = babel.numbers.get_currency_precision(currency)
    parsed = babel.numbers.parse_decimal(number, locale=locale)
    assert parsed == Decimal(amount).scaleb(-precision)


# -- datetime ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1700000000, "2023-11-14 22:13"),
        (1700000000.9, "2023-11-14 22:13"),
        ("1700000000", "2023-11-14 22:13"),
        (1700000000123, "2023-11-14 22:13"),  # milliseconds
        ("1700000000123", "2023-11-14 22:13"),
        ("2023-11-14T22:13:20Z", "2023-11-14 22:13"),
        ("2023-11-14T19:13:20-03:00", "2023-11-14 22:13"),
        ("2023-11-14T22:13:20", "2023-11-14 22:13"),  # naive is UTC
        ("2023-11-14T22:13:20.000Z", "2023-11-14 22:13"),
        (dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC), "2023-11-14 22:13"),
    ],
)
def test_datetime_reads_epochs_and_iso(value: object, expected: str) -> None:
    assert datetime(value) == expected


def test_datetime_seconds_and_milliseconds_are_told_apart() -> None:
    assert datetime(99_999_999_999, "%Y") == "5138"  # just below the threshold: seconds
    assert datetime(100_000_000_000, "%Y") == "1973"  # at it: milliseconds


def test_datetime_converts_time_zone() -> None:
    assert datetime(1700000000, "%d/%m %H:%M", "America/Santiago") == "14/11 19:13"
    assert datetime("2023-11-14T22:13:20Z", "iso", "Asia/Tokyo") == "2023-11-15T07:13:20+09:00"


def test_datetime_iso_format() -> None:
    assert datetime(1700000000, "iso") == "2023-11-14T22:13:20+00:00"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1700000000, "%H", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        ((1700000000, "%H", "../etc/passwd"), "unknown time zone"),
        (("yesterday",), "'yesterday' is neither epoch seconds, epoch ms nor ISO-8601"),
        ((10**30,), "out of range"),
        ((True,), "not a time"),
    ],
)
def test_datetime_errors(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(FilterError, match=match):
        datetime(*args)  # type: ignore[arg-type]


def test_datetime_absent_value_gives_empty_text() -> None:
    assert datetime(None) == ""


# -- tojson / fromjson ---------------------------------------------------------------------------


def test_tojson_keeps_unicode_and_does_not_escape_html() -> None:
    assert tojson({"name": "José <b>&'"}) == '{"name": "José <b>&\'"}'


def test_tojson_indent_and_datetimes() -> None:
    when = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert tojson({"a": [1]}, indent=2) == '{\n  "a": [\n    1\n  ]\n}'
    assert tojson(when) == '"2023-11-14T22:13:20+00:00"'


def test_tojson_unserializable_value_is_a_filter_error() -> None:
    with pytest.raises(FilterError, match="object"):
        tojson(object())


def test_fromjson() -> None:
    assert fromjson('{"q3_fullName": {"first": "Ana"}}') == {"q3_fullName": {"first": "Ana"}}
    with pytest.raises(FilterError, match="invalid JSON"):
        fromjson("{not json")
    with pytest.raises(FilterError, match="expected JSON text"):
        fromjson(42)


def test_tojson_fromjson_round_trip() -> None:
    value = {"a": ["ñ", 1, None, True], "b": {"c": 1.5}}
    assert fromjson(tojson(value)) == value == json.loads(tojson(value))
