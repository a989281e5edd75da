"""Settings are declared once (web/settings.py) and everything else reads them from there: each
variable reaches its own setting, the component configs carry every knob from the settings,
docs/configuration.md and ``livecart serve --help`` say what the declarations say, and no
production module reads the environment or arms a fault by itself."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest

from tests.source import ROOT, production_files
from web import settings_docs
from web.app import gateway_config, media_config, pipeline_config
from web.cli import parser
from web.settings import SETTINGS, Setting, Settings

PAGE = ROOT / "docs" / "configuration.md"
# Variables the docs name that are not livecart's settings: the tests' and CI's own knobs.
TEST_KNOBS = {
    "LIVECART_CRASH_REPS",
    "LIVECART_STATEFUL_EXAMPLES",
    "LIVECART_SCHEMATHESIS_CASES",
    "LIVECART_SCHEMATHESIS_PHASES",
    "LIVECART_REQUIRE_BROWSER",
    "LIVECART_REQUIRE_GSTREAMER",
    "LIVECART_REQUIRE_TLS_SERVERS",
    "LIVECART_CHROMIUM",
    "LIVECART_SCREENSHOTS",
}
# Values whose reading is more than their type's: (what is set, what the setting becomes).
REDIS = "rediss://lc:pw@cache.example:6380/2"
IRREGULAR: dict[str, tuple[str, object]] = {
    "REDIS_URL": (REDIS, REDIS),
    "LIVECART_ALLOWED_ORIGINS": (
        "https://a.example/, https://b.example",
        ("https://a.example", "https://b.example"),
    ),
    "LIVECART_TRUSTED_PROXIES": ("10.1.2.3/8", ("10.0.0.0/8",)),
    "LIVECART_LOG_FORMAT": ("JSON", "json"),
    "LIVECART_COOKIE_SECURE": ("1", True),
    "LIVECART_MAIL_URL": ("smtp://mail.example:2525", "smtp://mail.example:2525"),
}


def sample(item: Setting) -> tuple[str, object]:
    """A value for the variable other than its default, and what the setting then is."""
    if item.variable in IRREGULAR:
        return IRREGULAR[item.variable]
    default = item.default
    if isinstance(default, bool):
        return ("0", False) if default else ("1", True)
    if isinstance(default, int):
        return str(default + 7), default + 7
    if isinstance(default, float):
        return str(default + 0.25), default + 0.25
    if isinstance(default, Path):
        return "/srv/livecart", Path("/srv/livecart")
    if isinstance(default, tuple):
        return "one, two", ("one", "two")
    assert default is None or isinstance(default, str), item
    return "sample-value", "sample-value"


def every_sample() -> dict[str, str]:
    return {item.variable: sample(item)[0] for item in SETTINGS}


@pytest.mark.parametrize("item", SETTINGS, ids=lambda item: item.variable)
def test_each_variable_sets_its_own_setting_and_no_other(item: Setting) -> None:
    raw, expected = sample(item)
    found = Settings.from_env({item.variable: raw})
    assert getattr(found, item.field) == expected
    others = [s.field for s in SETTINGS if s.field != item.field]
    assert [getattr(found, f) for f in others] == [getattr(Settings(), f) for f in others]


def test_unset_and_empty_variables_take_the_declared_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env(dict.fromkeys(every_sample(), "")) == Settings()


def test_every_field_is_a_declared_setting_with_a_variable_of_its_own() -> None:
    declared = [item.field for item in SETTINGS]
    runtime = {f.name for f in fields(Settings)} - set(declared)
    assert runtime == {"hosted_room_ids"}  # set by the demo, not read from the environment
    variables = [item.variable for item in SETTINGS]
    assert len(set(variables)) == len(variables)
    assert all(item.doc and "\n" not in item.doc for item in SETTINGS)


@pytest.mark.parametrize(
    "item",
    [item for item in SETTINGS if type(item.default) in (int, float)],
    ids=lambda item: item.variable,
)
def test_a_number_that_is_not_stops_startup_with_one_line_naming_it(item: Setting) -> None:
    with pytest.raises(SystemExit) as refused:
        Settings.from_env({item.variable: "lots"})
    message = str(refused.value.code)
    assert message.startswith(item.variable) and "\n" not in message


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "mail.example:25"])
def test_a_mail_url_that_is_not_smtp_stops_startup(url: str) -> None:
    with pytest.raises(SystemExit) as refused:
        Settings.from_env({"LIVECART_MAIL_URL": url})
    assert str(refused.value.code).startswith("LIVECART_MAIL_URL")


def test_every_knob_of_the_component_configs_comes_from_a_setting() -> None:
    """Change every setting at once: every field of each config must change with them (a field
    that keeps its value is a default written somewhere else)."""
    changed = Settings.from_env(every_sample())
    keep = {"crash", "consumer"}  # the crash tests' hook; the consumer's name
    for build in (gateway_config, pipeline_config, media_config):
        before, after = build(Settings()), build(changed)
        same = [
            f.name
            for f in fields(before)
            if f.name not in keep and getattr(before, f.name) == getattr(after, f.name)
        ]
        assert not same, f"{build.__name__}: {same} do not follow the settings"
    window = Settings.from_env({"LIVECART_CHAT_WINDOW_MS": "250"})
    assert gateway_config(window).chat_window_ms == 250


def test_the_configuration_page_is_generated_from_the_declarations() -> None:
    assert PAGE.read_text() == settings_docs.markdown(), (
        "docs/configuration.md is stale: .venv/bin/python -m web.settings_docs "
        "> docs/configuration.md"
    )
    assert set(settings_docs.SECTIONS) <= {item.field for item in SETTINGS}


@pytest.mark.parametrize("command", ["serve", "demo", "worker"])
def test_help_lists_every_variable_with_its_default(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args([command, "--help"])
    shown = capsys.readouterr().out
    for item in SETTINGS:
        assert item.variable in shown
    assert "LIVECART_CHAT_WINDOW_MS" in shown and "[5000]" in shown


def test_the_docs_name_only_declared_variables() -> None:
    """README and docs/*.md (not decision records, which are history) may not name a variable
    livecart does not read, such as a removed one."""
    declared = {item.variable for item in SETTINGS}
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in files:
        named = set(
            re.findall(
                r"\b(?:LIVECART_[A-Z0-9_]*[A-Z0-9]|REDIS_URL|DATABASE_URL)", path.read_text()
            )
        )
        unknown = {v for v in named if v.removesuffix("_FILE") not in declared} - TEST_KNOBS
        assert not unknown, f"{path.name} names {sorted(unknown)}, which livecart does not read"
    assert "docs/configuration.md" in (ROOT / "README.md").read_text()


def production_modules() -> list[Path]:
    return production_files()


def reads_environment(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}:
            return True
        names = {alias.name for alias in node.names} if isinstance(node, ast.ImportFrom) else ()
        if getattr(node, "module", None) == "os" and {"environ", "getenv"} & set(names):
            return True
    return False


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = [
        str(path.relative_to(ROOT))
        for path in production_modules()
        if reads_environment(ast.parse(path.read_text()))
    ]
    assert readers == ["web/settings.py"]


def kills_itself(node: ast.AST) -> bool:
    """``os.kill(os.getpid(), ...)``, however spelt."""
    if not (isinstance(node, ast.Call) and node.args):
        return False
    target = node.args[0]
    return (
        isinstance(node.func, ast.Attribute | ast.Name)
        and getattr(node.func, "attr", getattr(node.func, "id", "")) == "kill"
        and isinstance(target, ast.Call)
        and getattr(target.func, "attr", getattr(target.func, "id", "")) == "getpid"
    )


def test_production_arms_no_fault_of_its_own() -> None:
    """Crash points act only when a test installs them (tests/crashing.py): no production
    module kills its own process, names a fault variable or imports the tests."""
    for path in production_modules():
        text = path.read_text()
        assert "LIVECART_FAULT" not in text and "LIVECART-FAULT" not in text, path
        nodes = list(ast.walk(ast.parse(text)))
        assert not any(kills_itself(node) for node in nodes), path
        imported = [node.module or "" for node in nodes if isinstance(node, ast.ImportFrom)]
        imported += [a.name for node in nodes if isinstance(node, ast.Import) for a in node.names]
        assert not [m for m in imported if m.split(".")[0] == "tests"], path
