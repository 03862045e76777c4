"""Structured JSON logs: one object per line, with an `action` and ids; secrets masked.

Call sites log a short message and put the facts in `extra` (action, event_id, delivery_id,
rule, provider, outcome, duration_ms, ...). Every configured secret value is replaced by
[redacted] in the finished line, whatever put it there.

Lines are written in batches (`LineBatches`): a write and a flush for each request's line
were a tenth of the receiver's loop. A warning or worse is written at once, the rest within
BATCH_SECONDS, and whatever is waiting when the process exits. uvicorn's own lines are
written at once too, with what waits before them: on SIGTERM uvicorn shuts down, logs
"Finished server process" and then ends the process with the signal's default action, which
runs no atexit (so no logging.shutdown) and would take the lines still waiting along.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Collection, Iterable
from typing import TextIO

from bridge.redaction import mask

_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's terminal-coloured copy of msg
}


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one line a request: format each second once
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        entry: dict[str, object] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        line = json.dumps(entry, ensure_ascii=False, default=str)
        return mask(line, self.secrets)


BATCH_SECONDS = 0.05


# the server's own loggers: a handful of lines (start, stop), the last one just before uvicorn
# ends the process with the signal it handled
SERVER_LOGGERS = frozenset({"uvicorn.error"})


class LineBatches(logging.Handler):
    """Formatted lines kept and written together: by a thread of its own every
    `BATCH_SECONDS`, at once for a warning or worse or a line of a logger in `at_once`, and on
    flush (logging.shutdown at exit). Once closed, each line is written as it comes: whatever
    still logs at the very end (another atexit handler, a thread) is not left waiting."""

    def __init__(
        self, stream: TextIO, *, every: float = BATCH_SECONDS, at_once: Collection[str] = ()
    ) -> None:
        super().__init__()
        self.stream = stream
        self._lines: list[str] = []
        self._every = every
        self._at_once = frozenset(at_once)
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            self._lines.append(self.format(record))
            if (
                record.levelno >= logging.WARNING
                or record.name in self._at_once
                or self._stop.is_set()
            ):
                self._write()
            elif self._writer is None:
                self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
                self._writer.start()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.flush()

    def _write(self) -> None:
        if self._lines:
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            self.stream.write(text)
            self.stream.flush()


def mask_also(secrets: Iterable[str]) -> None:
    """Mask `secrets` too in every line from now on (a reloaded configuration's); the ones
    masked already stay masked, since work of the old configuration may still log."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, JsonFormatter):
            formatter.secrets = sorted(
                {*formatter.secrets, *(s for s in secrets if s)}, key=len, reverse=True
            )


def configure_logging(level: str = "info", *, secrets: Iterable[str] = ()) -> None:
    # the lines carry neither the caller's file and line nor thread and process: do not
    # collect them for every record (the logging HOWTO's "Optimization")
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LineBatches(sys.stderr, at_once=SERVER_LOGGERS)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    for old in root.handlers:
        old.close()  # a LineBatches writes what it holds and stops its thread
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
