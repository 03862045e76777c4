"""`--help` names the environment variable behind each option, and docs/environment.md lists
every one of them: the table cannot drift from the options."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bridge.cli import build_parser
from bridge.cli.common import SETTINGS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "environment.md"


def parsers() -> dict[str, argparse.ArgumentParser]:
    top = build_parser()
    (commands,) = (a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return {"ticketbridge": top, **commands.choices}


@pytest.mark.parametrize("name", sorted(parsers()))
def test_help_names_the_variable_beside_each_option_it_backs(name):
    parser = parsers()[name]
    help_text = " ".join(parser.format_help().split())
    flags = {flag for action in parser._actions for flag in action.option_strings}
    for setting in SETTINGS.values():
        if setting.flag in flags:
            assert f"(env {setting.variable}; default {setting.default})" in help_text


def test_every_command_that_reads_the_configuration_or_the_store_takes_its_variable():
    takes = {
        name: {flag for action in parser._actions for flag in action.option_strings}
        for name, parser in parsers().items()
    }
    assert "--log-level" in takes["ticketbridge"]
    assert {"--host", "--port", "--processes", "--rules", "--db"} <= takes["serve"]
    for name in ("worker", "check", "try", "send", "replay", "purge"):
        assert "--rules" in takes[name] and "--templates" in takes[name], name
    for name in ("worker", "events", "show", "replay", "purge", "resume"):
        assert "--db" in takes[name], name


def test_the_docs_table_lists_every_variable_with_its_option_and_default():
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|", DOCS.read_text(), re.MULTILINE)
    table = {variable: (option.strip(), default.strip()) for variable, option, default in rows}
    for variable, setting in SETTINGS.items():
        option, default = table.pop(variable)
        assert option.strip("`").split()[0] == setting.flag
        assert default == f"`{setting.default}`"
    assert set(table) == {"BRIDGE_ADMIN_TOKEN"}  # the one that is no option
