"""Loading rules/*.yaml: merge, environment interpolation, JSON Schema, cross-references."""

from bridge.config.loader import Draft, draft_config, load_config, load_defaults
from bridge.config.model import (
    CircuitBreakerPolicy,
    Config,
    Defaults,
    DocPath,
    Fold,
    Location,
    ProviderConfig,
    RateLimit,
    RetryPolicy,
    RuleConfig,
    SourceConfig,
    format_path,
)
from bridge.config.units import parse_duration, parse_size
from bridge.config.validation import load_schema

__all__ = [
    "CircuitBreakerPolicy",
    "Config",
    "Defaults",
    "DocPath",
    "Draft",
    "Fold",
    "Location",
    "ProviderConfig",
    "RateLimit",
    "RetryPolicy",
    "RuleConfig",
    "SourceConfig",
    "draft_config",
    "format_path",
    "load_config",
    "load_defaults",
    "load_schema",
    "parse_duration",
    "parse_size",
]
