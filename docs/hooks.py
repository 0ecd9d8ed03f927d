"""mkdocs hook: the generated parts of the documentation, made at build time.

A page asks for them with an HTML comment on a line of its own:

- `<!-- generated: agent-settings -->`: a table of every `vaccel-agent` setting, from
  `vaccel.server.config.SETTINGS` (flag, TOML key, default, meaning);
- `<!-- generated: help vaccel example classify -->`: the `--help` text of that command,
  as the installed command prints it.

Nothing is fetched: the settings are imported, the help texts come from running the
commands with this Python.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from typing import Any

MARKER = re.compile(r"^<!-- generated: (?P<what>[^>]*?) -->$", re.MULTILINE)

#: The module each documented command runs.
COMMANDS = {"vaccel": "vaccel", "vaccel-agent": "vaccel.server"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def agent_settings() -> str:
    """The table of `vaccel-agent` settings, one row per entry of SETTINGS."""
    from vaccel.server.config import SETTINGS

    rows = [
        "| flag | TOML key | default | meaning |",
        "| --- | --- | --- | --- |",
        "| `--config FILE` | | | a TOML file of these settings (flags given win over it) |",
    ]
    for setting in SETTINGS:
        flag = f"`--{setting.name}`" + (f", `{setting.short}`" if setting.short else "")
        if setting.quarter_of:
            default = f"a quarter of `--{setting.quarter_of}`"
        elif setting.default is None:
            default = "see meaning"
        else:
            default = f"`{setting.default}`"
        meaning = setting.help + (" (repeatable: a TOML list)" if setting.repeat else "")
        rows.append(f"| {flag} | `{setting.name}` | {default} | {_cell(meaning)} |")
    return "\n".join(rows)


@cache
def command_help(words: tuple[str, ...]) -> str:
    """What `COMMAND ... --help` prints, run with this Python (80 columns)."""
    module = COMMANDS[words[0]]
    env = {**os.environ, "COLUMNS": "88", "VACCEL_LOG_LEVEL": "1"}
    run = subprocess.run(
        [sys.executable, "-m", module, *words[1:], "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(words)} --help failed: {run.stderr.strip()}")
    # argparse names the program after the module it ran as (`__main__.py`)
    text = run.stdout.replace("__main__.py", words[0])
    return f"```text\n$ {' '.join(words)} --help\n{text.rstrip()}\n```"


def generate(what: str) -> str:
    """The markdown for one marker."""
    if what == "agent-settings":
        return agent_settings()
    if what.startswith("help "):
        return command_help(tuple(what.split()[1:]))
    raise ValueError(f"docs/hooks.py: unknown generated part {what!r}")


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """mkdocs event: replace each marker of the page by what it asks for."""
    return MARKER.sub(lambda m: generate(m.group("what")), markdown)
