"""CSV tables meant for people, safe to open in a spreadsheet: a text cell that begins with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return is read by Excel, LibreOffice and Google Sheets as a
formula — ``=HYPERLINK("http://…", "click")`` in a file or class name, or in a reviewer's name typed
on the review page, would run when the table is opened (OWASP's "CSV injection"). Such cells are
written with a leading ``'`` (OWASP's advice), which a spreadsheet shows as text; a plain number
(``-3``, ``+1.5e3``) is left as it is. The Parquet tables keep every value unchanged."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["FORMULA_START", "formula_cells", "spreadsheet_safe"]

#: what a spreadsheet reads as the start of a formula
FORMULA_START = r"^[=+\-@\t\r]"
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _formula(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Per cell: would a spreadsheet run it as a formula (null cells: false)."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    hit = pc.and_(pc.match_substring_regex(col, FORMULA_START),
                  pc.invert(pc.match_substring_regex(col, _NUMBER)))  # fmt: skip
    return pc.fill_null(hit, False)


def formula_cells(table: pa.Table) -> int:
    """How many text cells of ``table`` :func:`spreadsheet_safe` changes."""
    return sum(int(pc.sum(_formula(c)).as_py() or 0) for c in table.columns if _is_text(c.type))


def spreadsheet_safe(table: pa.Table) -> pa.Table:
    """``table`` with every text cell a spreadsheet would run as a formula prefixed with ``'``."""
    for k, (field, col) in enumerate(zip(table.schema, table.columns, strict=True)):
        if not _is_text(field.type):
            continue
        if pa.types.is_dictionary(field.type):  # a categorical column: written as its text
            field = field.with_type(field.type.value_type)
            col = col.cast(field.type)
        hit = _formula(col)
        if pc.any(hit).as_py():
            quoted = pc.binary_join_element_wise(pa.scalar("'", field.type), col, pa.scalar("", field.type))
            table = table.set_column(k, field, pc.if_else(hit, quoted, col))
    return table
