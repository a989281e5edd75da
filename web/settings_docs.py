"""Every setting, documented from its declaration in web/settings.py: docs/configuration.md and
the environment list of ``livecart serve --help``. tests/test_settings.py fails when the page
and the declarations disagree; regenerate the page with
``.venv/bin/python -m web.settings_docs > docs/configuration.md``."""

from __future__ import annotations

import sys

from web.settings import SETTINGS, Setting

# Headings of docs/configuration.md, each before the setting (by field) that opens its part.
SECTIONS = {
    "data_dir": "Storage, listening and signing",
    "hold_ttl_s": "Checkout",
    "run_worker": "The order pipeline",
    "allowed_origins": "Room websockets",
    "room_log_maxlen": "Rooms",
    "video_max_viewers": "Live video",
    "access_log": "Logs",
    "trusted_proxies": "Per client address (decision 0019)",
    "bench_routes": "Benchmarks",
}

PREAMBLE = """\
# Configuration

livecart reads its settings from the environment once, at startup. Unset or empty, a variable
takes its default. A value that cannot be read stops startup with one line naming the
variable. A switch is on for `1`, `true`, `yes` or `on`, off for anything else. A secret
(a variable marked "or a file named by `…_FILE`") can be read from a file instead:
`LIVECART_SECRET_KEY_FILE=/run/secrets/key` (surrounding whitespace stripped; setting both, or
an empty file, stops startup).

This page is generated from the declarations in `web/settings.py`, which are the only place a
setting and its default are written; `livecart serve --help` lists the same. Regenerate it
with `.venv/bin/python -m web.settings_docs > docs/configuration.md` (tests/test_settings.py
fails while it is stale). How to run in production: README, "Production connections".
"""


def default_text(item: Setting) -> str:
    """The default as a reader wants it: the declared wording, or the value in code style."""
    if item.shown is not None:
        return item.shown
    value = item.default
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    if value is None or value == () or value == "":
        return "none"
    if isinstance(value, tuple):
        return "`" + ",".join(str(v) for v in value) + "`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def markdown() -> str:
    lines = [PREAMBLE.rstrip("\n")]
    for item in SETTINGS:
        if item.field in SECTIONS:
            lines += [
                f"\n## {SECTIONS[item.field]}\n",
                "| variable | takes | default | meaning |",
                "|---|---|---|---|",
            ]
        cells = [f"`{item.variable}`", item.reader.kind, default_text(item), item.doc]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def help_epilog() -> str:
    """The environment part of ``--help``: every variable, its default and its line of doc."""
    width = max(len(item.variable) for item in SETTINGS)
    lines = ["environment (every setting, in detail: docs/configuration.md):"]
    for item in SETTINGS:
        default = default_text(item).replace("`", "")
        lines.append(f"  {item.variable:<{width}}  {item.doc.replace('`', '')} [{default}]")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown())
