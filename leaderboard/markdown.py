"""README.md: the page as GitHub Markdown, figures linked from figures/."""

from __future__ import annotations

from hubbench.leaderboard.document import Block, Figure, Heading, Table, Text


def markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + block.text)
        elif isinstance(block, Text):
            out.append(block.text)
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(block.header) + " |", "|---" * len(block.header) + "|"]
            out.append("\n".join(lines + ["| " + " | ".join(row) + " |" for row in block.rows]))
        elif isinstance(block, Figure):
            out.append(f"![{block.caption}](figures/{block.name})\n\n{block.caption}")
    return "\n\n".join(out) + "\n"
