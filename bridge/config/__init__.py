"""Loading rules/*.yaml: merge, environment interpolation, JSON Schema, cross-references."""

from bridge.config.model import (
    Config,
    Defaults,
    DocPath,
    Location,
    ProviderConfig,
    RateLimit,
    RetryPolicy,
    RuleConfig,
    SourceConfig,
    format_path,
)

__all__ = [
    "Config",
    "Defaults",
    "DocPath",
    "Location",
    "ProviderConfig",
    "RateLimit",
    "RetryPolicy",
    "RuleConfig",
    "SourceConfig",
    "format_path",
]
