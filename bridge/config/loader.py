"""load_config: rules/*.yaml -> Config, or ConfigError with every problem at once.

Stages, each reporting all of its problems before the next would be confused by them:
1. find the files (every *.yaml / *.yml below the rules directory, except samples/ and
   schemas/ at its top and hidden names) and read each as YAML with lines: syntax errors and
   duplicate keys of all files;
2. merge them into one document, keeping where every node was written, interpolate
   `${NAME}` from the environment, validate against the JSON Schema, check cross-references,
   drop empty secrets: all of these problems together;
3. build the frozen records of bridge.config.model: every source, provider and rule whose own
   entry has the right shape, also when other entries or the cross-references are wrong, so
   that load_service can compile them and report their problems in the same run (a Draft).
   Only a problem outside the entries (in `defaults`) leaves nothing to build.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.config.envsubst import interpolate
from bridge.config.model import (
    CircuitBreakerPolicy,
    Config,
    Defaults,
    DocPath,
    Fold,
    Location,
    Locations,
    ProviderConfig,
    RateLimit,
    RetryPolicy,
    RuleConfig,
    SourceConfig,
    format_path,
    locate,
)
from bridge.config.quoting import is_secret_key
from bridge.config.units import parse_duration, parse_size
from bridge.config.validation import drop_empty_secrets, reference_findings, schema_findings
from bridge.config.yamlfile import YamlDocument, read_yaml
from bridge.exceptions import ConfigError, Problem
from bridge.tickets import ActionKind, OnExisting, OnMissing

SKIPPED_DIRS = ("samples", "schemas")  # sample payloads and JSON Schemas, not rules
NAMED_SECTIONS = {
    "providers": "provider",
    "sources": "source",
    "vars": "var",
    "defaults": "default",
}
TOP_LEVEL = ("providers", "sources", "rules", "vars", "defaults")
MIN_SECRET_LENGTH = 4


ENTRY_SECTIONS = ("providers", "sources", "rules")  # built entry by entry (see Draft)


@dataclass(frozen=True, kw_only=True)
class Draft:
    """The configuration as far as it can be built, and every problem found on the way.

    `config` holds every source, provider and rule whose own entry has no schema problem, no
    broken `${NAME}` and no emptied secret list; it is None when nothing can be built (a YAML
    problem, or one in `defaults`, which every entry depends on). With any problem, `config`
    is only for finding more of them (load_service compiles it): it must never run."""

    config: Config | None
    problems: tuple[Problem, ...]  # sorted, without repeats


def load_config(rules_dir: Path, templates_dir: Path, environ: Mapping[str, str]) -> Config:
    """The configuration in `rules_dir`, or ConfigError naming every problem."""
    draft = draft_config(rules_dir, templates_dir, environ)
    if draft.config is None or draft.problems:
        raise ConfigError(list(draft.problems))
    return draft.config


def draft_config(rules_dir: Path, templates_dir: Path, environ: Mapping[str, str]) -> Draft:
    """Every problem of the configuration in `rules_dir`, and what of it could be built."""
    documents, problems = read_rule_files(rules_dir)
    if problems:
        return Draft(config=None, problems=tuple(sorted(set(problems))))

    merged = _merge(documents)
    interpolated = interpolate(merged.data, environ)
    data: dict[str, Any] = interpolated.data
    variables, broken = interpolated.variables, interpolated.missing

    def where(path: DocPath) -> Location:
        return locate(merged.locations, path, rules_dir=rules_dir)

    shapes = schema_findings(data, variables)
    references, schemas = reference_findings(data, variables, rules_dir=rules_dir, locate=where)
    emptied = drop_empty_secrets(data, broken)
    findings = [f for f in shapes + references + emptied if f[0] not in broken]
    findings += interpolated.problems
    problems = merged.problems + [_problem(where(path), message) for path, message in findings]
    # a reference problem leaves every entry buildable; an entry whose own values are not what
    # the schema asks (or what the user meant: a broken ${NAME}, a secret list emptied) is not
    # built, so that nothing is reported twice and nothing is built from a wrong shape
    unbuilt = {path for path, _ in shapes + emptied} | broken
    skip = {path[:2] for path in unbuilt if _in_entry(path)}
    if any(not _in_entry(path) and path[:1] != ("vars",) for path in unbuilt):
        return Draft(config=None, problems=tuple(sorted(set(problems))))
    config = _build(
        data,
        skip=skip,
        locations=merged.locations,
        schemas=schemas,
        rules_dir=rules_dir,
        templates_dir=templates_dir,
        secrets=collect_secrets(data, interpolated.env_values),
        from_env=variables,
    )
    return Draft(config=config, problems=tuple(sorted(set(problems))))


def _in_entry(path: DocPath) -> bool:
    """Whether `path` is inside one source, provider or rule (not a section as a whole)."""
    return len(path) > 1 and path[0] in ENTRY_SECTIONS


def load_defaults(rules_dir: Path, environ: Mapping[str, str]) -> Defaults:
    """Only the `defaults` section, for commands that need no providers or sources (`purge`):
    a provider's secret missing from this environment is not their concern."""
    documents, problems = read_rule_files(rules_dir)
    merged = _merge(documents)
    interpolated = interpolate({"defaults": merged.data["defaults"]}, environ)
    findings = [f for f in schema_findings(interpolated.data, {}) if f[0][:1] == ("defaults",)]
    findings += interpolated.problems
    problems += merged.problems + [
        _problem(locate(merged.locations, path, rules_dir=rules_dir), message)
        for path, message in findings
    ]
    if problems:
        raise ConfigError(sorted(set(problems)))
    return _defaults(interpolated.data["defaults"])


def read_rule_files(rules_dir: Path) -> tuple[list[YamlDocument], list[Problem]]:
    """Every rules file below `rules_dir` read as YAML with lines, and the problems of all."""
    files, problems = find_rule_files(rules_dir)
    documents: list[YamlDocument] = []
    for path in files:
        document, file_problems = read_yaml(path, file=str(path))
        problems.extend(file_problems)
        if document is not None:
            documents.append(document)
    return documents, problems


RULES_CHOICE = (
    "give another with --rules DIR or the BRIDGE_RULES environment variable, "
    "or run `ticketbridge init` to write a working example"
)


def find_rule_files(rules_dir: Path) -> tuple[list[Path], list[Problem]]:
    def problem(message: str) -> tuple[list[Path], list[Problem]]:
        return [], [Problem(file=str(rules_dir), line=0, path="", message=message)]

    resolved = rules_dir.resolve()
    if not rules_dir.exists():
        return problem(f"the rules directory {resolved} does not exist: {RULES_CHOICE}")
    if not rules_dir.is_dir():
        return problem(f"the rules directory {resolved} is not a directory: {RULES_CHOICE}")
    found: list[Path] = []
    for root, dirs, files in os.walk(rules_dir):
        here = Path(root)
        top = here == rules_dir
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (top and d in SKIPPED_DIRS)]
        found += [
            here / f for f in files if f.endswith((".yaml", ".yml")) and not f.startswith(".")
        ]
    if not found:
        return problem(f"no *.yaml or *.yml file in the rules directory {resolved}: {RULES_CHOICE}")
    return sorted(found, key=lambda p: p.relative_to(rules_dir).parts), []


def _problem(where: Location, message: str) -> Problem:
    return Problem(file=where.file, line=where.line, path=where.path, message=message)


# --- merging -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Merged:
    data: dict[str, Any] = field(
        default_factory=lambda: {"rules": []} | {k: {} for k in NAMED_SECTIONS}
    )
    locations: Locations = field(default_factory=Locations)
    problems: list[Problem] = field(default_factory=list)


def _merge(documents: list[YamlDocument]) -> _Merged:
    """One document from many: named sections merged by name, rules concatenated in order."""
    merged = _Merged()
    for document in documents:
        lines, data = document.lines, document.data

        def where(path: DocPath, document: YamlDocument = document) -> Location:
            line = document.lines.get(path, 1)
            return Location(file=document.file, line=line, path=format_path(path))

        def reject(path: DocPath, message: str, document: YamlDocument = document) -> None:
            merged.problems.append(_problem(where(path, document), message))

        if data is None:
            continue
        if not isinstance(data, dict):
            reject((), f"a rules file must be a mapping with the keys {', '.join(TOP_LEVEL)}")
            continue
        accepted: dict[DocPath, DocPath] = {}  # in-file prefix -> merged prefix
        for section, value in data.items():
            if section not in TOP_LEVEL:
                reject((section,), f"unknown key '{section}' (expected {', '.join(TOP_LEVEL)})")
                continue
            if value is None:
                continue
            if (section,) not in merged.locations:
                merged.locations.add(
                    (section,), file=document.file, written=(section,), lines=lines
                )
            if section == "rules":
                if not isinstance(value, list):
                    reject((section,), "rules must be a list of rules")
                    continue
                offset = len(merged.data["rules"])
                merged.data["rules"].extend(value)
                accepted.update({("rules", i): ("rules", offset + i) for i in range(len(value))})
                continue
            if not isinstance(value, dict):
                reject((section,), f"{section} must be a mapping of names to entries")
                continue
            for name, entry in value.items():
                if name in merged.data[section]:
                    first = merged.locations[(section, name)]
                    places = (
                        f"{first.file}:{first.line} and {document.file}:{lines[(section, name)]}"
                    )
                    what = NAMED_SECTIONS[section]
                    reject((section, name), f"{what} '{name}' is defined twice: {places}")
                    continue
                merged.data[section][name] = entry
                accepted[(section, name)] = (section, name)
        for written, target in accepted.items():
            merged.locations.add(target, file=document.file, written=written, lines=lines)
    return merged


# --- secrets -------------------------------------------------------------------------------


def collect_secrets(
    data: Mapping[str, Any], env_values: Mapping[DocPath, tuple[str, ...]]
) -> frozenset[str]:
    """Every string under a secret-looking key of providers and sources (and a verifier's
    `values`), with the environment values they were built from: what output must mask."""
    found: set[str] = set()
    for section in ("providers", "sources"):
        entries = data.get(section)
        # the entries' own names (a provider called `awal-secret`) are names, not keys
        for name, entry in entries.items() if isinstance(entries, dict) else ():
            for path, value in _secret_leaves(entry, (section, name), secret=False):
                found.add(value)
                found.update(env_values.get(path, ()))
    return frozenset(s for s in found if len(s.strip()) >= MIN_SECRET_LENGTH)


def _secret_leaves(value: Any, path: DocPath, *, secret: bool) -> Iterator[tuple[DocPath, str]]:
    if isinstance(value, str) and secret:
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            is_secret = secret or is_secret_key(key, path)
            yield from _secret_leaves(item, (*path, key), secret=is_secret)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _secret_leaves(item, (*path, i), secret=secret)


# --- records -------------------------------------------------------------------------------


def _build(
    data: dict[str, Any],
    *,
    skip: set[DocPath],
    locations: Mapping[DocPath, Location],
    schemas: Mapping[str, dict[str, Any]],
    rules_dir: Path,
    templates_dir: Path,
    secrets: frozenset[str],
    from_env: Mapping[DocPath, tuple[str, ...]],
) -> Config:
    """The records of every entry but those in `skip` (so every value built has its shape)."""
    raw_defaults = data["defaults"]
    defaults = _defaults(raw_defaults)
    sources = {
        name: SourceConfig(
            name=name,
            path=raw.get("path", f"/hooks/{name}"),
            verify=raw["verify"],
            dedupe_key=raw.get("dedupe_key"),
            max_body=parse_size(raw.get("max_body", defaults.max_body)),
            schema=schemas.get(name),
            body=raw.get("body"),
            split=bool(raw.get("split", False)),
            default_rule=raw.get("default_rule"),
            location=locations[("sources", name)],
        )
        for name, raw in data["sources"].items()
        if ("sources", name) not in skip
    }
    providers = {
        name: ProviderConfig(
            name=name,
            type=raw["type"],
            settings=raw,
            base_url=raw.get("base_url"),
            timeout=parse_duration(raw.get("timeout", 10)),
            retry=_retry({**raw_defaults.get("retry", {}), **raw.get("retry", {})}),
            rate_limit=_rate_limit(raw.get("rate_limit")),
            concurrency=int(raw.get("concurrency", 4)),
            circuit_breaker=_breaker(
                {**raw_defaults.get("circuit_breaker", {}), **raw.get("circuit_breaker", {})}
            ),
            fallback=raw.get("fallback"),
            fallback_after=parse_duration(raw.get("fallback_after", "10m")),
            location=locations[("providers", name)],
        )
        for name, raw in data["providers"].items()
        if ("providers", name) not in skip
    }
    return Config(
        rules_dir=rules_dir,
        templates_dir=templates_dir,
        sources=sources,
        providers=providers,
        rules=tuple(
            _rule(i, raw, locations)
            for i, raw in enumerate(data["rules"])
            if ("rules", i) not in skip
        ),
        vars=data["vars"],
        defaults=defaults,
        locations=locations,
        secrets=secrets,
        from_env=from_env,
    )


def _defaults(raw: Mapping[str, Any]) -> Defaults:
    keep = raw.get("keep_bodies")
    return Defaults(
        dedupe_window=parse_duration(raw.get("dedupe_window", "7d")),
        max_depth=int(raw.get("max_depth", 64)),
        max_body=parse_size(raw.get("max_body", "1MiB")),
        keep_bodies=None if keep is None else parse_duration(keep),
        retry=_retry(raw.get("retry", {})),
        circuit_breaker=_breaker(raw.get("circuit_breaker", {})),
        lease=parse_duration(raw.get("lease", "30s")),
        shutdown_grace=parse_duration(raw.get("shutdown_grace", "10s")),
        body_timeout=parse_duration(raw.get("body_timeout", "10s")),
        max_in_flight=int(raw.get("max_in_flight", 1000)),
        trusted_proxies=tuple(raw.get("trusted_proxies", ())),
    )


def _retry(raw: Mapping[str, Any]) -> RetryPolicy:
    convert: dict[str, Callable[[Any], Any]] = {"max_attempts": int, "factor": float}
    return RetryPolicy(**{k: convert.get(k, parse_duration)(v) for k, v in raw.items()})


def _breaker(raw: Mapping[str, Any]) -> CircuitBreakerPolicy:
    return CircuitBreakerPolicy(
        failures=int(raw.get("failures", 5)), cooldown=parse_duration(raw.get("cooldown", "30s"))
    )


def _fold(raw: Mapping[str, Any] | None) -> Fold | None:
    if raw is None:
        return None
    return Fold(window=parse_duration(raw["window"]), max=int(raw.get("max", 50)))


def _rate_limit(raw: Mapping[str, Any] | None) -> RateLimit | None:
    if raw is None:
        return None
    per_second = float(raw["per_second"])
    return RateLimit(per_second=per_second, burst=int(raw.get("burst", math.ceil(per_second))))


def _rule(index: int, raw: dict[str, Any], locations: Mapping[DocPath, Location]) -> RuleConfig:
    sources = raw.get("source", ())
    return RuleConfig(
        name=raw["name"],
        sources=(sources,) if isinstance(sources, str) else tuple(sources),
        when=raw.get("when") or {},
        if_expr=raw.get("if"),
        action=ActionKind(raw["action"]),
        provider=raw["provider"],
        ticket=raw.get("ticket") or {},
        continue_=bool(raw.get("continue", False)),
        on_existing=OnExisting(raw.get("on_existing", "update")),
        on_missing=OnMissing(raw.get("on_missing", "skip")),
        fold=_fold(raw.get("fold")),
        doc_path=("rules", index),
        location=locations[("rules", index)],
    )
