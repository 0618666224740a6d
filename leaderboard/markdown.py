"""README.md: the page as GitHub Markdown, figures linked from figures/."""

from __future__ import annotations

from hubbench.leaderboard.document import Block, Figure, Flag, Heading, Table, Text


def markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + block.text)
        elif isinstance(block, Text):
            out.append(block.text)
        elif isinstance(block, Flag):
            out.append(f"> ⚠ {block.text}")
        elif isinstance(block, Table):
            rule = "".join("|--:" if numeric else "|---" for numeric in block.numeric) + "|"
            lines = ["| " + " | ".join(block.header) + " |", rule]
            out.append("\n".join(lines + ["| " + " | ".join(row) + " |" for row in block.rows]))
        elif isinstance(block, Figure):
            out.append(f"![{block.caption}](figures/{block.name})\n\n{block.caption}")
    return "\n\n".join(out) + "\n"
