"""Every error ticketbridge raises on purpose, as one tree.

    BridgeError
    ├── ConfigError          the configuration is wrong; carries every Problem at once
    ├── RenderError          a template failed while rendering; names template, line, message
    ├── RejectedRequest      a webhook we answer with a 4xx (status, error code, detail)
    └── StoreError           the store could not do what was asked
        └── StoreUnavailable the database cannot be reached (the receiver answers 503)

Errors of the layers below (sqlite3, httpx, yaml, jinja2) are caught in the module that
called them and re-raised as one of these; they never reach a caller above.
"""

from __future__ import annotations

from dataclasses import dataclass


class BridgeError(Exception):
    """Base of every error ticketbridge raises on purpose."""


@dataclass(frozen=True, kw_only=True, order=True)
class Problem:
    """One thing wrong with the configuration, where it is and why."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(BridgeError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RenderError(BridgeError):
    def __init__(self, *, template: str, line: int | None, message: str) -> None:
        self.template = template
        self.line = line
        self.message = message
        where = f"{template}, line {line}" if line else template
        super().__init__(f"render error in {where}: {message}")


class RejectedRequest(BridgeError):
    """A webhook that gets a 4xx: `error` is the machine code, `detail` says why."""

    def __init__(
        self, status: int, error: str, detail: str | None = None, *, path: str | None = None
    ) -> None:
        self.status = status
        self.error = error
        self.detail = detail
        self.path = path
        super().__init__(f"{status} {error}: {detail}" if detail else f"{status} {error}")

    @property
    def closes(self) -> bool:
        """Whether the answer closes the connection: after a body that stalled (408) there is
        no telling where the next request would begin."""
        return self.status == 408

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.detail is not None:
            out["detail"] = self.detail
        if self.path is not None:
            out["path"] = self.path
        return out


class StoreError(BridgeError):
    pass


class StoreUnavailable(StoreError):
    pass
