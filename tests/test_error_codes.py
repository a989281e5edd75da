"""Error codes are enum members, one enum per package (decision 0021), and docs/protocol.md, the
enums and web/error_codes.py say the same: every member is documented once with its HTTP status
(or as websocket-only), every documented code is a member, and no code is written as a bare
string where one is raised or compared."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

from kernel.errors import ErrorCode
from tests.source import ROOT, production_files
from web.error_codes import _BY_STATUS, ENUMS, STATUS, WEBSOCKET_ONLY

PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()
MEMBERS: dict[str, ErrorCode] = {m.value: m for enum in ENUMS for m in enum}
WEBSOCKET = "websocket"


def _section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _codes_in(cell: str) -> list[str]:
    return re.findall(r"`([a-z][a-z_]*)`", cell)


def documented() -> dict[str, list[tuple[str, str]]]:
    """Per enum named in the "Error codes" section, its tables' (code, status cell) pairs."""
    tables: dict[str, list[tuple[str, str]]] = {}
    rows: list[tuple[str, str]] = []
    for line in _section(PROTOCOL, "Error codes").splitlines():
        named = re.match(r"\*\*.*\*\* \(`[^`]+`, `(\w+ErrorCode)`\)", line)
        if named:
            rows = tables.setdefault(named.group(1), [])
        elif line.startswith("| `"):
            codes, status = (cell.strip() for cell in line.strip("|").split("|")[:2])
            rows += [(code, status) for code in _codes_in(codes)]
    return tables


def test_each_enum_is_a_str_enum_of_lowercase_names() -> None:
    for enum in ENUMS:
        assert issubclass(enum, ErrorCode) and enum.__doc__, enum
        assert [m for m in enum if m.value != m.name.lower()] == [], enum
    values = Counter(m.value for enum in ENUMS for m in enum)
    assert [v for v, n in values.items() if n > 1] == []  # a code has one enum


def _enum_classes() -> set[str]:
    """Every class in the packages whose base is an ``...ErrorCode``."""
    found = set()
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                ast.unparse(base).endswith("ErrorCode") for base in node.bases
            ):
                found.add(node.name)
    return found


def test_every_code_enum_is_listed_in_web_error_codes() -> None:
    assert _enum_classes() == {enum.__name__ for enum in ENUMS}


def test_every_member_is_documented_once_and_nothing_else() -> None:
    tables = documented()
    assert sorted(tables) == sorted(enum.__name__ for enum in ENUMS)
    for enum in ENUMS:
        listed = [code for code, _ in tables[enum.__name__]]
        assert [c for c, n in Counter(listed).items() if n > 1] == [], enum.__name__
        assert sorted(listed) == sorted(m.value for m in enum), enum.__name__


def test_documented_statuses_are_those_of_web_error_codes() -> None:
    for enum_name, rows in documented().items():
        for code, status in rows:
            member = MEMBERS[code]
            expected = WEBSOCKET if member in WEBSOCKET_ONLY else str(STATUS[member])
            assert status.strip("*") == expected, (enum_name, code)


def test_every_member_has_an_http_status_or_is_websocket_only() -> None:
    for member in MEMBERS.values():
        assert (member in STATUS) != (member in WEBSOCKET_ONLY), member
    listed = Counter(code for codes in _BY_STATUS.values() for code in codes)
    assert [code for code, n in listed.items() if n > 1] == []  # one status each, named once
    assert all(type(code) in ENUMS for code in listed)


def _status_mentions() -> list[tuple[str, str]]:
    """(status, code) wherever the docs write one beside the other: "409 `x`", "`409 x`"."""
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    text = "\n".join(path.read_text() for path in docs)
    return re.findall(r"\b([1-5]\d\d)`?\s+`?([a-z][a-z_]*)`", text)


def _status_tables() -> list[tuple[list[str], list[str]]]:
    """Rows like ``| 409 | `room_ended`, ... | when |`` outside the "Error codes" tables."""
    rows = []
    for line in PROTOCOL.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) >= 2 and re.fullmatch(r"\d{3}(, \d{3})*", cells[0]):
            rows.append((re.findall(r"\d{3}", cells[0]), _codes_in(cells[1])))
    return rows


def test_codes_beside_a_status_in_the_docs_are_members_with_it() -> None:
    mentions = _status_mentions()
    assert len(mentions) > 10  # the pattern still finds the prose's "409 `code`"
    for status, code in mentions:
        assert code in MEMBERS, code
        assert str(STATUS[MEMBERS[code]]) == status, code
    for statuses, codes in _status_tables():
        for code in codes:
            assert code in MEMBERS, code
            assert str(STATUS[MEMBERS[code]]) in statuses, code


def test_the_websocket_error_list_names_members() -> None:
    listed = _section(PROTOCOL, "Live rooms (websocket)").split("**Errors** (`error.code`):")[1]
    codes = _codes_in(listed.split("\n\n")[0])
    assert "chat_rate_limited" in codes
    assert [code for code in codes if code not in MEMBERS] == []


# -- no bare code strings ----------------------------------------------------------------------


def _sources() -> list[Path]:
    return production_files()


def _is_text(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_is_text(item) for item in node.elts)
    return False


def _holds_code(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "code") or (
        isinstance(node, ast.Name) and node.id == "code"
    )


def bare_codes(source: str) -> list[int]:
    """Lines where a string is passed as ``code=`` or compared (==, !=, in) with a code."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "code" and _is_text(node.value):
            lines.append(node.value.lineno)
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops
        ):
            sides = [node.left, *node.comparators]
            if any(_holds_code(s) for s in sides) and any(_is_text(s) for s in sides):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "source",
    [
        'raise Conflict("Sold out.", code="sold_out")',
        'raise Conflict("No.", code=f"deal_not_{status}")',
        'if err.code == "deal_not_live": pass',
        'if "sold_out" != err.code: pass',
        'if err.code in {"hold_expired", CheckoutErrorCode.HOLD_RELEASED}: pass',
        'if code not in ("muted",): pass',
    ],
)
def test_bare_codes_finds_a_string_code(source: str) -> None:
    assert bare_codes(source) == [1]


def test_bare_codes_leaves_enum_members_alone() -> None:
    source = (
        "raise Conflict('Sold out.', code=CheckoutErrorCode.SOLD_OUT)\n"
        "if err.code is CatalogErrorCode.DEAL_NOT_LIVE or err.code in CHAT_STRIKES: pass\n"
        "if result[0] == 'ok': pass\n"
    )
    assert bare_codes(source) == []


def test_no_bare_code_string_in_the_packages() -> None:
    found = [f"{p.relative_to(ROOT)}:{n}" for p in _sources() for n in bare_codes(p.read_text())]
    assert found == []
