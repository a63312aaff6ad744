"""The *shape* of a documented output (``shape``): what the program prints, not what the data
or the clock make of it. ``scripts/regenerate_docs.py --check`` compares shapes."""

from __future__ import annotations

import functools
import re

ARCH = re.compile(r"\b(?:mlp|cnn1d|cnn2d|resnet) [^\s`|]+ T=\d+ \w+")
NUMBER = re.compile(r"(?<![\w.])[-+±]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|\b(?:NaN|nan|inf)\b")
LIST = re.compile(r"\[#(?:,? #)*\]")  # Python lists, and NumPy arrays as pandas prints them


@functools.cache
def _counts_pattern() -> re.Pattern[str]:
    from bitnas.studies.report import PHRASES

    phrases = "|".join(re.escape(p) for p in sorted(PHRASES.values(), key=len, reverse=True))
    return re.compile(rf"# finished trials(?: \(# \w+(?:, # \w+)*\))?(?:, # (?:{phrases}))*")


def template(line: str) -> str:
    """One line with what varies with the data replaced: architectures by ``ARCH``, numbers by
    ``#``, lists of numbers by ``[#…]``, a trial-count summary (``bitnas.studies.report``'s
    ``format_counts``, whose clauses appear only when their count is above zero) by ``COUNTS``,
    runs of blanks by one space and of dashes by one dash (aligned tables)."""
    s = ARCH.sub("ARCH", line)
    s = NUMBER.sub("#", s)
    s = LIST.sub("[#…]", s)
    s = _counts_pattern().sub("COUNTS", s)
    s = re.sub(r"-{2,}", "-", s)
    return " ".join(s.split())


def _table_row(cells: list[str]) -> str:
    """A Markdown table's data row: its first cell (bold and parenthesised notes dropped, e.g.
    ``#28 (knee)``) and its number of cells; what the other cells hold is data."""
    first = re.sub(r"\s*\([^)]*\)", "", template(cells[0]).replace("**", "")).strip()
    return f"| {first} |{' … |' * (len(cells) - 1)}"


def shape(lines: list[str]) -> list[str]:
    """The shape of an output: the distinct line templates (``template``), in the order they
    first appear (``check`` compares them as sets). So a front of 5 rows and one of 9 have one
    shape (the number of lines is data, not shape), while a renamed column, a reworded message,
    a new or missing line kind, an empty front where one was shown, or a table with another
    number of columns changes it. Markdown tables: header rows are kept
    whole, data rows as ``_table_row``. Blank lines do not count."""
    out: list[str] = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        is_row = ln.lstrip().startswith("|")
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        is_rule = is_row and all(re.fullmatch(r":?-+:?", c) for c in cells)
        header = is_row and bool(re.fullmatch(r"\s*\|[\s:|-]+\|\s*", nxt)) and "-" in nxt
        t = _table_row(cells) if is_row and not is_rule and not header else template(ln)
        if t not in out:
            out.append(t)
    return out
