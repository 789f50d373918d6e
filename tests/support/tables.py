"""Reading the tables the commands print (rich's box drawing) back into cells, for tests about their contents."""

from __future__ import annotations


def table_rows(text: str) -> dict[str, list[str]]:
    """A printed table's rows by their first cell (the metric's label): each other cell, its folded lines joined
    by a space (a cell rich wrapped over several lines reads as one)."""
    rows: dict[str, list[list[str]]] = {}
    label = None
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        first, *cells = (c.strip() for c in line.strip("│").split("│"))
        if first:
            label = first
            rows[label] = [[] for _ in cells]
        for lines, cell in zip(rows[label], cells, strict=True):
            if cell:
                lines.append(cell)
    return {label: [" ".join(lines) for lines in cells] for label, cells in rows.items()}
