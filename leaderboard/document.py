"""The leaderboard page as a list of blocks, built once and rendered to both Markdown and HTML.

Text and table cells may use two inline Markdown marks, `code` and **bold**; both renderers know them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hubbench.figures import Figure
from hubbench.record import MISSING as MISSING  # what a table writes for a value the records do not have


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Flag:
    """A warning about the numbers that follow (e.g. records of a dirty checkout), set apart from the text."""

    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]

    @property
    def numeric(self) -> list[bool]:
        """Per column: do most of its cells start with a number (bold or not)? Those are right-aligned."""
        return [2 * sum(bool(NUMBER.match(row[j])) for row in self.rows) > len(self.rows) > 0
                for j in range(len(self.header))]


Block = Heading | Text | Flag | Table | Figure

NUMBER = re.compile(r"(\*\*)?[+-]?\.?\d")
