"""index.html: the page as one self-contained file (inline style and script, figures as data: URIs), to mail
or archive, and to explore: a table of contents, tables sorted by a click on a column's header and
filtered by a text box, numbers right-aligned, wide tables scrolled in place with their Method column held
at the left edge and their Avg column at the right (so that a phone shows which method scores what), and
every figure a link to its PNG in figures/ beside the page, to open it full size. Without JavaScript it
reads as a static page; nothing is fetched when it is viewed."""

from __future__ import annotations

import base64
import html
import re
from collections import Counter

from hubbench.figures import RC
from hubbench.leaderboard.document import Block, Figure, Flag, Heading, Table, Text

TOC_LEVELS = (2, 3, 4)
CSS_DPI = 96  # CSS pixels per inch: a figure shows at its size in inches, its fonts at their size in points

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 90em; padding: 0 1em; color: #222; }
h2 { border-top: 2px solid #ddd; padding-top: 0.6em; margin-top: 2em; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.3em 0 1em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td { background: #fff; }
th.key, td.key { position: sticky; left: 0; z-index: 1; box-shadow: 1px 0 0 #ccc; }
th.avg, td.avg { position: sticky; right: 0; z-index: 1; box-shadow: -1px 0 0 #ccc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #aaa; font-size: 0.8em; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; color: #333; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; color: #333; }
.tools { font-size: 0.9em; color: #555; margin-top: 0.6em; }
.tools input { font: inherit; padding: 0.15em 0.4em; width: 16em; }
code { background: #f3f3f3; padding: 0 0.2em; }
.flag { background: #fff4e0; border-left: 4px solid #e08a00; padding: 0.4em 0.8em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; }
figure a { display: inline-block; }
figcaption { color: #555; }
nav.toc { background: #f7f7f7; border: 1px solid #ddd; padding: 0.5em 1em; font-size: 0.92em; }
nav.toc ul { margin: 0.2em 0; padding-left: 1.2em; }
nav.toc > ul { columns: 2 22em; padding-left: 0; list-style: none; }
nav.toc > ul > li { break-inside: avoid; margin-bottom: 0.4em; }
nav.toc ul ul ul { padding: 0; }
nav.toc ul ul ul li { display: inline; }
nav.toc ul ul ul li:not(:last-child)::after { content: " \\00B7\\00A0"; }
nav.toc a { text-decoration: none; }
@media (max-width: 700px) {
  body { margin: 1em auto; padding: 0 0.5em; }
  th { white-space: nowrap; }
  td.key { min-width: 8em; max-width: 11em; overflow-wrap: anywhere; }
  nav.toc > ul { columns: auto; }
}
@media (min-width: 1500px) {
  body { margin-left: 20em; }
  nav.toc { position: fixed; left: 0; top: 0; bottom: 0; width: 17em; overflow-y: auto; border-width: 0 1px 0 0; }
  nav.toc > ul { columns: auto; }
}
"""

# Sort on a click (or Enter) on a header: numbers by value, the cells without one last either way, text
# in natural order; the first click sorts up, the next down. Filter: rows containing every typed word.
SCRIPT = """
(() => {
  const number = text => {
    const m = text.match(/^\\s*([+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:e[+-]?\\d+)?)/i);
    return m ? parseFloat(m[1]) : null;
  };
  for (const table of document.querySelectorAll("table.sortable")) {
    const body = table.tBodies[0], rows = Array.from(body.rows), heads = Array.from(table.tHead.rows[0].cells);
    heads.forEach((th, col) => {
      th.tabIndex = 0;
      th.title = "Sort by this column";
      const sort = () => {
        const up = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(h => h.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        const key = row => (row.cells[col] ? row.cells[col].textContent : "").trim();
        const numeric = th.classList.contains("num");
        rows.slice().sort((a, b) => {
          if (numeric) {
            const x = number(key(a)), y = number(key(b));
            if (x === null || y === null) return (x === null) - (y === null);
            return up ? x - y : y - x;
          }
          const order = key(a).localeCompare(key(b), undefined, {numeric: true});
          return up ? order : -order;
        }).forEach(row => body.appendChild(row));
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", e => { if (e.key === "Enter") sort(); });
    });
    const tools = document.createElement("div"), box = document.createElement("input");
    const count = document.createElement("span");
    tools.className = "tools";
    box.type = "search";
    box.placeholder = "Filter rows (words)";
    box.setAttribute("aria-label", "Filter the rows of the next table");
    box.addEventListener("input", () => {
      const words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
      let shown = 0;
      for (const row of rows) {
        const text = row.textContent.toLowerCase(), keep = words.every(w => text.includes(w));
        row.hidden = !keep;
        shown += keep;
      }
      count.textContent = words.length ? ` ${shown} of ${rows.length} rows` : "";
    });
    tools.append(box, count);
    table.parentNode.before(tools);
  }
})();
"""


def inline(text: str) -> str:
    """Escape, then turn the page's two inline marks into tags; a mean ± std never breaks across lines."""
    text = html.escape(text, quote=False).replace(" ± ", "\u00a0±\u00a0")
    text = re.sub(r"`([^`]*)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)


def anchors(blocks: list[Block]) -> dict[int, str]:
    """Block index -> id of every heading, from its text, numbered where headings repeat (across hubs)."""
    seen: Counter = Counter()
    out = {}
    for i, block in enumerate(blocks):
        if isinstance(block, Heading):
            anchor = re.sub(r"[^a-z0-9]+", "-", block.text.lower()).strip("-") or "section"
            seen[anchor] += 1
            out[i] = anchor + (f"-{seen[anchor]}" if seen[anchor] > 1 else "")
    return out


def contents(blocks: list[Block], ids: dict[int, str]) -> str:
    """The table of contents: the headings of `TOC_LEVELS` as nested lists."""
    out, depth = [], TOC_LEVELS[0] - 1
    for i, anchor in ids.items():
        level = blocks[i].level
        if level not in TOC_LEVELS:
            continue
        if level > depth:
            out += ["<ul>"] * (level - depth)
        else:
            out += ["</li>", *["</ul></li>"] * (depth - level)]
        out.append(f'<li><a href="#{anchor}">{inline(blocks[i].text)}</a>')
        depth = level
    out += ["</li>", *["</ul></li>"] * (depth - TOC_LEVELS[0]), "</ul>"]
    return f'<nav class="toc" aria-label="Contents"><strong>Contents</strong>\n{"".join(out)}\n</nav>'


# the columns held in view while a wide table scrolls: the one naming the row's method, and the Avg
STICKY = {"Method": "key", "Avg": "avg"}


def table(block: Table) -> str:
    classes = [" ".join(c for c in ("num" if numeric else "", STICKY.get(h, "")) if c)
               for h, numeric in zip(block.header, block.numeric, strict=True)]

    def cell(tag: str, text: str, j: int) -> str:
        return f'<{tag} class="{classes[j]}">{inline(text)}</{tag}>' if classes[j] else f"<{tag}>{inline(text)}</{tag}>"

    head = "".join(cell("th", h, j) for j, h in enumerate(block.header))
    body = "\n".join("<tr>" + "".join(cell("td", c, j) for j, c in enumerate(row)) + "</tr>" for row in block.rows)
    return (f'<div class="scroll"><table class="sortable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            "</tbody>\n</table></div>")


def figure(block: Figure) -> str:
    """The PNG at its size in inches (its width and height from the PNG header, over the figures' dpi), linked
    to its file in figures/ (a data: URI cannot be opened as a page)."""
    width, height = (int.from_bytes(block.png[at:at + 4], "big") * CSS_DPI // RC["savefig.dpi"] for at in (16, 20))
    data = base64.b64encode(block.png).decode()
    name = html.escape(block.name)
    return (f'<figure id="{name}"><a href="figures/{name}" title="Open full size"><img '
            f'src="data:image/png;base64,{data}" width="{width}" height="{height}" alt="{html.escape(block.caption)}">'
            f"</a><figcaption>{inline(block.caption)}</figcaption></figure>")


def element(block: Block, anchor: str | None) -> str:
    if isinstance(block, Heading):
        return f'<h{block.level} id="{anchor}">{inline(block.text)}</h{block.level}>'
    if isinstance(block, Text):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Flag):
        return f'<p class="flag">⚠ {inline(block.text)}</p>'
    if isinstance(block, Table):
        return table(block)
    if isinstance(block, Figure):
        return figure(block)
    raise TypeError(f"not a page block: {block!r}")


def page(title: str, blocks: list[Block]) -> str:
    """The page; the table of contents follows the first heading (the title)."""
    ids = anchors(blocks)
    parts = [element(b, ids.get(i)) for i, b in enumerate(blocks)]
    first = next(iter(ids), -1) + 1
    body = "\n".join([*parts[:first], contents(blocks, ids), *parts[first:]])
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
