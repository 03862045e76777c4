"""How configuration problems name the values and names they are about.

A problem about a value shows it (`regex '([unclosed' does not compile: ...`), cut short past
SHOWN_LENGTH characters, except where showing it could leak a secret: a value taken from the
environment is named by its variables (`(the value of ${STRIPE_SECRET})`), and one written
under a secret-looking key of a provider or source (`api_key`, `secrets`, `Authorization`)
is not shown at all. A reference to a name that is not defined lists the names that are.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

Path = tuple[str | int, ...]  # a path into the merged document (bridge.config.model.DocPath)
Variables = Mapping[Path, tuple[str, ...]]  # strings that came from the environment

SHOWN_LENGTH = 60  # characters of a value shown in a message; longer ones are cut short
LISTED_NAMES = 12  # defined names listed after "is not defined"; more are counted
SECRET_KEY = re.compile(r"secret|token|password|passwd|api_key|apikey|key|auth|credential", re.I)
NOT_SECRET_KEYS = frozenset(
    {"dedupe_key", "secret_encoding", "timestamp_key", "signature_keys", "auth_pause"}
)
_SECRET_SECTIONS = ("providers", "sources")
HIDDEN = "(a secret, not shown)"


def is_secret_key(key: str | int, parent: Path) -> bool:
    """Whether the value under `key` of the node at `parent` (a provider's or source's own
    path, or below it) is a secret, together with everything under it."""
    if not isinstance(key, str) or len(parent) < 2 or parent[0] not in _SECRET_SECTIONS:
        return False
    if parent[-1:] == ("fields",):  # Glassix {metadata key: field2}: the user's own names
        return False
    if key == "values" and parent[-1:] == ("verify",):
        return True
    return SECRET_KEY.search(key) is not None and key not in NOT_SECRET_KEYS


def is_secret_path(path: Path) -> bool:
    """Whether the value at `path` is a secret or inside one."""
    return any(is_secret_key(path[i], path[:i]) for i in range(2, len(path)))


def show_value(value: Any, path: Path, variables: Variables) -> str:
    """`value`, written at `path`, as a message shows it: quoted text, a number, true or
    false, or a short JSON list or mapping; cut short when long, never a secret."""
    names = variables.get(path)
    if names:
        return "(the value of " + " and ".join(f"${{{n}}}" for n in dict.fromkeys(names)) + ")"
    if is_secret_path(path) or _holds_hidden(value, path, variables):
        return HIDDEN
    if isinstance(value, str):
        shown = value if len(value) <= SHOWN_LENGTH else value[: SHOWN_LENGTH - 1] + "…"
        return repr(shown)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= SHOWN_LENGTH else text[: SHOWN_LENGTH - 1] + "…"


def _holds_hidden(value: Any, path: Path, variables: Variables) -> bool:
    """Whether a list or mapping holds a value from the environment or under a secret key."""
    if isinstance(value, Mapping):
        items: Iterable[tuple[str | int, Any]] = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return False
    for key, item in items:
        here = (*path, key)
        if here in variables or is_secret_key(key, path) or _holds_hidden(item, here, variables):
            return True
    return False


def close_name(word: str, choices: Iterable[str]) -> str | None:
    """The one of `choices` that `word` is most likely a typo of, if any is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'audit'?)` when one of `choices` is close to `word`, else nothing."""
    close = close_name(word, choices)
    return f" (did you mean '{close}'?)" if close else ""


def defined(what: str, names: Collection[str]) -> str:
    """`(defined: audit, desk)`, the first LISTED_NAMES in order and a count of the rest, or
    `(no provider is defined)`."""
    if not names:
        return f"(no {what} is defined)"
    listed = list(names)[:LISTED_NAMES]
    more = len(names) - len(listed)
    return f"(defined: {', '.join(listed)}{f' and {more} more' if more else ''})"


def not_defined(
    what: str, value: Any, path: Path, variables: Variables, names: Collection[str]
) -> str:
    """`provider 'vambe' is not defined (defined: audit, desk)`, and `; did you mean 'audit'?`
    when one of the names is close (to a value written, not taken from the environment)."""
    close = None if path in variables else close_name(str(value), names)
    hint = f"; did you mean '{close}'?" if close else ""
    shown = show_value(value, path, variables)
    return f"{what} {shown} is not defined {defined(what, names)}{hint}"
