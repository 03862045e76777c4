"""bridge.phones: the one reading of a phone number, and the forms the adapters send."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from bridge.phones import NO_REGION, PhoneError, digits, for_provider, to_e164

E164 = phonenumbers.PhoneNumberFormat.E164

# -- the numbers of the providers' own documents (/work/shared/seeds/) -----------------------------


@pytest.mark.parametrize(
    ("value", "region"),
    [
        ("+56912345678", "CL"),  # Vambe: "with country code (recommended)"
        ("56912345678", "CL"),  # Vambe: "string format"
        (56912345678, "CL"),  # Vambe: "number format"
        ("+56 9 1234 5678", "CL"),
        ("+56912345678", NO_REGION),
        ("56912345678", NO_REGION),  # bare digits without a region: international
        (56912345678, NO_REGION),
    ],
)
def test_vambes_example_number_is_accepted(value: object, region: str) -> None:
    assert to_e164(value, region) == "+56912345678"


@pytest.mark.parametrize("value", ["+56912345678", "56912345678", 56912345678, "+56 9 1234 5678"])
def test_strict_refuses_vambes_example_because_phonenumbers_calls_it_not_valid(
    value: object,
) -> None:
    with pytest.raises(PhoneError) as caught:
        to_e164(value, "CL", strict=True)
    assert str(caught.value) == (
        f"{value!r} is not a phone number (default region CL): "
        "possible, but not valid: no such range in phonenumbers' metadata"
    )
    assert (caught.value.value, caught.value.region) == (value, "CL")


def test_glassix_example_number_with_a_us_default() -> None:
    assert to_e164("7818469236", "US") == "+17818469236"
    assert to_e164("7818469236", "us", strict=True) == "+17818469236"  # also a valid one
    assert digits("+17818469236") == "17818469236"


@pytest.mark.parametrize(
    ("value", "region", "reason"),
    [
        ("123", "CL", "too short"),
        ("call me", "CL", "it does not look like a phone number"),
        ("+56 9 1234", NO_REGION, "too short"),
        ("+99 123 456 789", NO_REGION, "no country has that calling code"),
        ("(2) 2123-4567", NO_REGION, "written without + and no default region to read it in"),
        ("9 6123 4567", "XX", "phonenumbers knows no region 'XX'"),
        ("253-0000", "US", "only dialable locally: the area code is missing"),
        (True, "CL", "expected text or an integer"),
        (["+56912345678"], NO_REGION, "expected text or an integer"),
    ],
)
def test_unreadable_or_impossible_numbers_say_what_and_why(
    value: object, region: str, reason: str
) -> None:
    with pytest.raises(PhoneError) as caught:
        to_e164(value, region)
    where = "no default region" if region == NO_REGION else f"default region {region}"
    assert str(caught.value) == f"{value!r} is not a phone number ({where}): {reason}"


def test_region_is_read_in_any_case_and_blank_means_none() -> None:
    assert to_e164("9 6123 4567", " cl ") == "+56961234567"
    assert to_e164("56961234567", "") == "+56961234567"


# -- what the adapters send ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("+56 9 1234-5678", "+56912345678"),
        ("56912345678", "+56912345678"),  # bare digits are international: the + is added
        ("(+56) 9.1234.5678", "+56912345678"),
        ("+5691234", "+5691234"),  # too short for phonenumbers, sent as before
        ("+1 2345", "+12345"),  # Chatwoot sent a + and any digits without separators
        ("+1234 5678 9012 3456 7", "+12345678901234567"),
        ("56 9 1234 5678", "56912345678"),  # no + and no region: unreadable, sent as before
        ("call me maybe", None),
        ("12345", None),
    ],
)
def test_for_provider(value: str, sent: str | None) -> None:
    assert for_provider(value) == sent


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("+1 781-846-9236", "17818469236"),
        ("+966 50 123 4567", "966501234567"),
        ("+44 (0) 20 7946 0000", "442079460000"),  # E.164 drops the national prefix
        ("12-34", "1234"),  # not a phone number for phonenumbers: its digits, as before
        ("call me", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_digits(value: str | None, sent: str) -> None:
    assert digits(value) == sent


# -- properties ----------------------------------------------------------------------------------

_REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r))
_TYPES = [
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
]


@st.composite
def possible_numbers(draw: st.DrawFn) -> tuple[str, phonenumbers.PhoneNumber]:
    """A region and a number phonenumbers calls possible there: an example number of the region
    with some of its digits replaced (keeping its length, which is what "possible" is about),
    so many are possible but not valid, as Vambe's example is."""
    region = draw(st.sampled_from(_REGIONS))
    kind = draw(st.sampled_from(_TYPES))
    example = phonenumbers.example_number_for_type(region, kind)
    assume(example is not None)
    assert example is not None
    national = str(example.national_number)
    keep = draw(st.integers(min_value=1, max_value=len(national)))
    tail = draw(st.text(alphabet="0123456789", min_size=len(national) - keep, max_size=16))
    number = phonenumbers.PhoneNumber(
        country_code=example.country_code,
        national_number=int(national[:keep] + tail[: len(national) - keep]),
        italian_leading_zero=example.italian_leading_zero,
    )
    reason = phonenumbers.is_possible_number_with_reason(number)
    assume(reason == phonenumbers.ValidationResult.IS_POSSIBLE)
    # phonenumbers itself must read the E.164 text back as this number: it does not when the
    # digits after the country code start with a national prefix that leaves a possible number
    # ("+375 810 000 0000" is read as +375100000000, the 8 being Belarus's trunk prefix)
    canonical = phonenumbers.format_number(number, E164)
    assume(phonenumbers.format_number(phonenumbers.parse(canonical), E164) == canonical)
    return region, number


_SEPARATOR = st.sampled_from([" ", "-", ".", "", "  "])


@settings(max_examples=300, deadline=None)  # the first use of a region loads its metadata
@given(drawn=possible_numbers(), separator=_SEPARATOR)
def test_possible_numbers_written_any_way_read_back_to_the_same_e164(
    drawn: tuple[str, phonenumbers.PhoneNumber], separator: str
) -> None:
    region, number = drawn
    expected = phonenumbers.format_number(number, E164)
    spaced = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    written = re.sub(r"[\s-]", separator, spaced)
    assert to_e164(written, region) == expected  # "+56-9-1234-5678" with its region
    assert to_e164(written, NO_REGION) == expected  # the + makes the region moot
    assert to_e164(expected[1:], NO_REGION) == expected  # bare digits, WhatsApp style
    assert to_e164(int(expected[1:]), NO_REGION) == expected  # the same as an int
    assert for_provider(written) == expected
    assert digits(written) == expected[1:]
    if phonenumbers.is_valid_number(number):
        event("valid")
        assert to_e164(written, region, strict=True) == expected
    else:
        event("possible, not valid")
        with pytest.raises(PhoneError, match="not valid"):
            to_e164(written, region, strict=True)


@settings(max_examples=200, deadline=None)
@given(
    region=st.sampled_from(_REGIONS),
    kind=st.sampled_from(_TYPES),
    separator=_SEPARATOR,
)
def test_valid_numbers_written_nationally_read_back_with_their_region(
    region: str, kind: int, separator: str
) -> None:
    number = phonenumbers.example_number_for_type(region, kind)
    assume(number is not None)
    assert number is not None
    expected = phonenumbers.format_number(number, E164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    written = re.sub(r"[\s-]", separator, national)
    assert to_e164(written, region, strict=True) == expected
    assert to_e164(written, region) == expected


_PHONEISH = st.text(alphabet="0123456789+-() .x#*ext٥٦＋", max_size=30)
_WRITTEN = possible_numbers().map(
    lambda drawn: phonenumbers.format_number(drawn[1], phonenumbers.PhoneNumberFormat.NATIONAL)
)
_VALUES = st.one_of(
    st.text(max_size=40), _PHONEISH, _WRITTEN, st.integers(), st.none(), st.booleans()
)
_ANY_REGION = st.one_of(
    st.sampled_from([*_REGIONS, NO_REGION, "", "xx", "cl"]), st.text(max_size=4)
)


@settings(max_examples=500, deadline=None)
@given(value=_VALUES, region=_ANY_REGION)
def test_anything_else_is_a_phone_error_never_another_exception(value: object, region: str) -> None:
    for strict in (False, True):
        try:
            result = to_e164(value, region, strict=strict)
        except PhoneError as exc:
            assert repr(value) in str(exc)
        else:  # E.164: at most 15 digits
            assert re.fullmatch(r"\+[1-9][0-9]{1,14}", result)


@settings(max_examples=500, deadline=None)
@given(value=_VALUES, region=_ANY_REGION)
def test_strict_accepts_a_subset_of_lenient_with_the_same_answer(
    value: object, region: str
) -> None:
    try:
        strict = to_e164(value, region, strict=True)
    except PhoneError:
        return
    assert to_e164(value, region) == strict


@settings(max_examples=500, deadline=None)
@given(value=st.one_of(st.text(max_size=40), _PHONEISH))
def test_no_adapter_refuses_a_phone_it_sent_before(value: str) -> None:
    """What the adapters did before bridge.phones: Vambe sent the value without separators
    when that was +? and 6-15 digits; Chatwoot did so for + and digits; Awal and Glassix sent
    its digits. Each still sends something for every such value, never raising."""
    compact = re.sub(r"[\s().\-]", "", value)
    sent = for_provider(value)
    if re.fullmatch(r"\+?[0-9]{6,15}", compact):  # Vambe's old rule
        assert sent is not None
    if re.fullmatch(r"\+\d+", compact):  # Chatwoot's old rule: it sent the compact form
        assert sent is not None and sent.startswith("+")
    if sent is not None:
        assert re.fullmatch(r"\+?[0-9]{6,}|\+\d+", sent)
    if re.sub(r"\D", "", value):  # Awal Chat's and Glassix's old rule
        assert digits(value)
    assert re.fullmatch(r"\d*", digits(value))


def _old_e164_filter(value: object, region: str) -> str | None:
    """What `e164` answered before bridge.phones (possible and valid demanded), None for an
    error: kept here to show that no number it took is refused now."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text, default = str(value).strip(), region.strip().upper() or "ZZ"
    if default == "ZZ" and not text.startswith("+") and text.isdigit():
        text = "+" + text
    try:
        number = phonenumbers.parse(text, default)
    except phonenumbers.NumberParseException:
        return None
    if not (phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number)):
        return None
    return phonenumbers.format_number(number, E164)


@settings(max_examples=500, deadline=None)
@given(value=_VALUES, region=_ANY_REGION)
def test_every_number_the_filter_took_before_is_taken_the_same_even_strict(
    value: object, region: str
) -> None:
    before = _old_e164_filter(value, region)
    if before is not None:
        assert to_e164(value, region) == before
        assert to_e164(value, region, strict=True) == before


def test_a_number_longer_than_e164_allows_is_refused() -> None:
    # phonenumbers' metadata takes 14 national digits for Nigeria: 17 with the country code
    with pytest.raises(PhoneError, match="more than E.164's 15 digits"):
        to_e164(10_000_000_000_000, "NG")
