"""The leaderboard page as a list of blocks, built once and rendered to both Markdown and HTML.

Text and table cells may use two inline Markdown marks, `code` and **bold**; both renderers know them.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubbench.figures import Figure


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


Block = Heading | Text | Table | Figure

MISSING = "—"
