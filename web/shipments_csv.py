"""The seller center's shipments file, read into ``checkout.bulk_ship`` shipments.

A CSV in UTF-8 (a spreadsheet's byte-order mark is fine): a header row naming the columns
``order_id``, ``carrier`` and ``tracking_number`` (in any order, any case), then one shipment a
line. Blank lines are skipped. A file that is not such a CSV is refused whole
(``malformed_csv``, nothing applied); a line that cannot be read becomes a shipment carrying its
problem, answered beside the others: ``malformed_csv_row`` (not three fields, or a field too
long), ``invalid_order_id`` (not an order number; a leading ``#``, as the seller center writes
them, is fine). An empty carrier or tracking number is left for shipping to refuse
(``tracking_required``), as it would one order.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from checkout.bulk_ship import Shipment
from kernel.errors import Invalid
from web.error_codes import WebErrorCode
from web.http import BadRequest
from web.schemas import MAX_ID

COLUMNS = ("order_id", "carrier", "tracking_number")
# As the orders table's columns (and the JSON API's schema) take them.
MAX_LENGTH = {"carrier": 60, "tracking_number": 100}


@dataclass(frozen=True)
class Line:
    """A shipment and the line of the file it came from (the header is line 1)."""

    number: int
    shipment: Shipment


def read_shipments(data: bytes) -> list[Line]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _malformed(
            "The file is not UTF-8 text: save the CSV as UTF-8 and try again."
        ) from None
    if "\x00" in text:
        raise _malformed("The file is not text: upload a CSV.")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((row for row in reader if _filled(row)), None)
        if header is None or sorted(h.strip().lower() for h in header) != sorted(COLUMNS):
            raise _malformed(
                "The first line must name the columns: order_id,carrier,tracking_number.",
                found=header or [],
            )
        columns = [h.strip().lower() for h in header]
        return [
            Line(reader.line_num, _shipment(dict(zip(columns, row, strict=True))))
            if len(row) == len(COLUMNS)
            else Line(reader.line_num, _bad_row(reader.line_num, len(row)))
            for row in reader
            if _filled(row)
        ]
    except csv.Error as err:
        raise _malformed(f"The file is not a CSV: {err}.", line=reader.line_num) from None


def _filled(row: list[str]) -> bool:
    """A line with something in it (a spreadsheet ends with lines of only commas)."""
    return any(cell.strip() for cell in row)


def _shipment(row: dict[str, str]) -> Shipment:
    raw_id = row["order_id"].strip().removeprefix("#")
    fields = {name: row[name].strip() for name in MAX_LENGTH}
    for name, limit in MAX_LENGTH.items():
        if len(fields[name]) > limit:
            problem = Invalid(
                f"The {name.replace('_', ' ')} is longer than {limit} characters.",
                code=WebErrorCode.MALFORMED_CSV_ROW,
                field=name,
            )
            return Shipment(None, problem=problem)
    if not (raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 10) or not (
        0 < int(raw_id) <= MAX_ID
    ):
        problem = Invalid(
            f"{row['order_id'].strip()!r} is not an order number.",
            code=WebErrorCode.INVALID_ORDER_ID,
            field="order_id",
        )
        return Shipment(None, problem=problem)
    return Shipment(int(raw_id), fields["carrier"], fields["tracking_number"])


def _bad_row(number: int, fields: int) -> Shipment:
    problem = Invalid(
        f"Line {number} has {fields} fields; a shipment has {len(COLUMNS)}: "
        "order_id,carrier,tracking_number.",
        code=WebErrorCode.MALFORMED_CSV_ROW,
        fields=fields,
    )
    return Shipment(None, problem=problem)


def _malformed(message: str, **details: object) -> BadRequest:
    return BadRequest(message, code=WebErrorCode.MALFORMED_CSV, status=400, **details)
