"""docs/configuration.md's server and worker table states what the CLI's one settings table (cli.SETTINGS)
holds: each row's command, flag, variable and default, in the same order."""
from __future__ import annotations

import pathlib
import re

from graphexec import cli

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\|\s*(serve|worker|both)\s*\|\s*`(--[\w-]+)`\s*\|\s*`(GRAPHEXEC_\w+)`\s*\|([^|]*)\|", re.MULTILINE)


def documented_settings() -> list[tuple[str, str, str, str]]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    return [(command, flag, variable, " ".join(default.replace("`", "").split()))
            for command, flag, variable, default in ROW.findall(text)]


def test_docs_table_states_the_cli_settings():
    expected = [(s.command, s.flag, s.variable, s.shown_default) for s in cli.SETTINGS]
    rows = "\n".join(f"| {c} | `{f}` | `{v}` | {d} |" for c, f, v, d in expected)
    assert documented_settings() == expected, f"docs/configuration.md should list, in this order:\n{rows}"


def test_every_setting_is_a_flag_of_its_commands_with_its_default(monkeypatch):
    for setting in cli.SETTINGS:
        monkeypatch.delenv(setting.variable, raising=False)
    monkeypatch.setenv("GRAPHEXEC_REDIS_URL", "redis://127.0.0.1:1/0")  # worker requires one
    for setting in cli.SETTINGS:
        for command in setting.commands():
            args = cli._parser().parse_args([command])
            value = getattr(args, setting.flag[2:].replace("-", "_"))
            if setting.variable != "GRAPHEXEC_REDIS_URL":
                assert value == setting.type(setting.default), (command, setting.flag, value)
