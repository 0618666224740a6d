"""index.html: the page as one self-contained file (inline style, figures as data: URIs), to mail or archive."""

from __future__ import annotations

import base64
import html
import re
from collections import Counter

from hubbench.leaderboard.document import Block, Figure, Heading, Table, Text

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 0.2em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
figcaption { color: #555; }
"""


def inline(text: str) -> str:
    """Escape, then turn the page's two inline marks into tags."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]*)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)


def element(block: Block, ids: Counter) -> str:
    if isinstance(block, Heading):
        anchor = re.sub(r"[^a-z0-9]+", "-", block.text.lower()).strip("-")
        ids[anchor] += 1
        anchor += f"-{ids[anchor]}" if ids[anchor] > 1 else ""  # headings repeat across hubs
        return f'<h{block.level} id="{anchor}">{inline(block.text)}</h{block.level}>'
    if isinstance(block, Text):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{inline(h)}</th>" for h in block.header)
        body = "\n".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in block.rows)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode()
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.caption)}">'
                f"<figcaption>{inline(block.caption)}</figcaption></figure>")
    raise TypeError(f"not a page block: {block!r}")


def page(title: str, blocks: list[Block]) -> str:
    ids: Counter = Counter()
    body = "\n".join(element(b, ids) for b in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
