"""The spreadsheet formula-injection rule, in Python and in SQL: one rule, two renderings.

A text cell whose first character is one of `= + - @`, TAB, CR or an apostrophe gets one
apostrophe (`'`) put in front of it. Spreadsheets show such a cell as text instead of
evaluating it. Prefixing the apostrophe itself too makes the rule reversible: a reader
recovers the stored value by dropping one leading apostrophe from any text cell that has
one (`restore`).

The exports neutralise text columns in the database (`formula_safe`, a test of the first
character's code, no quoting) so that a row can leave the database as finished
text; `neutralise` is the same rule for values rendered in Python, and the reference the
SQL is tested against.
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
_CODES = ", ".join(str(ord(c)) for c in sorted(FORMULA_STARTS))
_ABOVE = max(ord(c) for c in FORMULA_STARTS) + 1


def neutralise(value: str) -> str:
    """The text cell for `value`: an apostrophe in front if it could start a formula."""
    return "'" + value if value and value[0] in FORMULA_STARTS else value


def restore(cell: str) -> str:
    """The stored value of a text cell written by `neutralise`."""
    return cell[1:] if cell.startswith("'") else cell


class formula_safe(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    """A text value as `neutralise` would render it, computed by the database (NULL stays NULL)."""

    type = String()
    inherit_cache = True
    name = "formula_safe"


class formula_safe_or_null_at_nul(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    """`formula_safe`, but NULL for a value it would neutralise that holds a NUL character (SQLite).

    For `csv_printed`'s `%-*s` cells, printed at least as wide as the stored value: a cell
    cut short at a NUL shows as padding, unless neutralising's extra byte fills the gap;
    NULL there makes it all padding. Only cells starting like a formula pay for the scan.
    """

    type = String()
    inherit_cache = True
    name = "formula_safe_or_null_at_nul"


def _first_code_is_a_formula_start(code_function: str, *, null_at_nul: bool = False):
    def render(element, compiler, **kw):
        value = compiler.process(element.clauses, **kw)
        code = f"{code_function}({value})"
        neutralised = f"'''' || {value}"
        if null_at_nul:
            neutralised = f"(CASE WHEN instr({value}, char(0)) > 0 THEN NULL ELSE {neutralised} END)"
        # The range test first: most cells start with a letter and never reach the list.
        return (f"(CASE WHEN {code} < {_ABOVE} AND {code} IN ({_CODES}) "
                f"THEN {neutralised} ELSE {value} END)")
    return render


# ascii('') is 0 and unicode('') NULL: an empty cell is left alone, as in Python.
compiles(formula_safe, "postgresql")(_first_code_is_a_formula_start("ascii"))
compiles(formula_safe, "sqlite")(_first_code_is_a_formula_start("unicode"))
compiles(formula_safe_or_null_at_nul, "sqlite")(_first_code_is_a_formula_start("unicode", null_at_nul=True))
