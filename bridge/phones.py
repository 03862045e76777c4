"""Phone numbers, written once: is this a phone number, and what is its E.164 form.

Every part of the bridge that touches a phone asks here: the `e164` template filter, and the
adapters that send a contact's phone to a helpdesk (Vambe and Chatwoot want E.164, Glassix and
Awal Chat its digits without `+`).

- `to_e164(value, region, strict=)` is the one reading. phonenumbers parses the value (text
  with spaces, dashes, parentheses or dots, or an int); a number it calls *possible* (the right
  length for its country) is the answer, formatted as E.164. `strict=True` also demands
  *valid* (in a range phonenumbers' metadata knows as assigned), which rejects real numbers
  from ranges it has not caught up with: `+56 9 1234 5678` is possible but not valid.
  Without a default region (`NO_REGION`, "ZZ"), bare digits are an international number
  written without its `+` (WhatsApp style). Anything else raises `PhoneError`, naming the
  value and the default region.
- `for_provider(value)` and `digits(value)` are what adapters send. They read the value with
  `to_e164` (no region: an action's phone is rendered already, so it is international) and,
  where phonenumbers cannot, fall back to what the adapters accepted before phonenumbers
  decided for them, so no number that used to be sent is refused now.
"""

from __future__ import annotations

import re

import phonenumbers

NO_REGION = "ZZ"

#: the fallback for text phonenumbers cannot read: the value without separators, when what is
#: left is what an adapter sent before bridge.phones: an optional + and 6 to 15 digits (Vambe),
#: or a + and any digits (Chatwoot)
_SEPARATORS = re.compile(r"[\s().\-]")
_PLAUSIBLE = re.compile(r"\+?[0-9]{6,15}|\+\d+")  # \d: any script's digits, as Chatwoot had
_NOT_DIGIT = re.compile(r"\D")
_BARE_DIGITS = re.compile(r"\d+")  # any script's decimal digits; phonenumbers reads them all

_UNREADABLE = {
    phonenumbers.NumberParseException.NOT_A_NUMBER: "it does not look like a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}

_IMPOSSIBLE = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "no country has that calling code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "no number in that country has that length",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: (
        "only dialable locally: the area code is missing"
    ),
}


class PhoneError(ValueError):
    """A value that is not a phone number: unreadable, impossible, or (strict) not valid."""

    def __init__(self, value: object, region: str, reason: str) -> None:
        self.value = value
        self.region = region
        self.reason = reason
        where = "no default region" if region == NO_REGION else f"default region {region}"
        super().__init__(f"{value!r} is not a phone number ({where}): {reason}")


E164_DIGITS = 15


def to_e164(value: object, region: str = NO_REGION, *, strict: bool = False) -> str:
    """`value` (text or an int) in E.164: "+56912345678".

    `region` (ISO 3166 code, any case) is the country of numbers written without a leading
    `+`; with `NO_REGION` bare digits are read as international. Raises PhoneError."""
    default = region.strip().upper() or NO_REGION
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PhoneError(value, default, "expected text or an integer")
    text = str(value).strip()
    if default == NO_REGION and _BARE_DIGITS.fullmatch(text):
        text = "+" + text  # bare digits without a region: international (WhatsApp style)
    try:
        number = phonenumbers.parse(text, default)
    except phonenumbers.NumberParseException as exc:
        reason = _unreadable(exc.error_type, default, international="+" in text or "＋" in text)
        raise PhoneError(value, default, reason) from None
    verdict = phonenumbers.is_possible_number_with_reason(number)
    if verdict != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise PhoneError(value, default, _IMPOSSIBLE.get(verdict, "not a possible number"))
    if strict and not phonenumbers.is_valid_number(number):
        raise PhoneError(
            value, default, "possible, but not valid: no such range in phonenumbers' metadata"
        )
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) - 1 > E164_DIGITS:  # the metadata of a few countries allows longer ones
        raise PhoneError(value, default, f"more than E.164's {E164_DIGITS} digits")
    return e164


def for_provider(value: str) -> str | None:
    """The phone as an API that wants E.164 gets it (Vambe, Chatwoot), or None if `value` is
    not a phone number: E.164 when phonenumbers reads a possible number; else the value without
    separators when that is an optional + and 6 to 15 digits, or a + and any digits (what
    Vambe and Chatwoot sent before)."""
    try:
        return to_e164(value)
    except PhoneError:
        compact = _SEPARATORS.sub("", value)
        return compact if _PLAUSIBLE.fullmatch(compact) else None


def digits(value: str | None) -> str:
    """The phone as an API that wants digits without `+` gets it (Glassix, Awal Chat): the
    digits of its E.164 form; else every digit in `value` (as the adapters sent it before);
    "" when there is none."""
    if not value:
        return ""
    try:
        return to_e164(value)[1:]
    except PhoneError:
        return _NOT_DIGIT.sub("", value)


def _unreadable(error_type: int, region: str, *, international: bool) -> str:
    if error_type != phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
        return _UNREADABLE.get(error_type, "it does not look like a phone number")
    if international:
        return "no country has that calling code"
    if region == NO_REGION:
        return "written without + and no default region to read it in"
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return f"phonenumbers knows no region {region!r}"
    return "no country has that calling code"
