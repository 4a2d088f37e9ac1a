"""Reports written twice from one structure: ``report.md`` (plots linked) and a self-contained
``report.html`` (plots embedded as data URIs, no external resources), both atomically.

    doc = Document("isospike convert: rate on digits")
    doc.paragraph("Command: ...")
    doc.table(["T", "acc (%)"], [[4, 98.2]])
    doc.image("accuracy.png", "accuracy vs T")      # a PNG in the report folder
    doc.write("runs/convert")                        # report.md + report.html
"""

from __future__ import annotations

import base64
import html
import platform
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isospike._io import atomic_write_text
from isospike.tables import fmt, markdown_table

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 980px; margin: 2em auto;
       padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .8em 0; font-size: 14px; }
th, td { border: 1px solid #bbb; padding: 3px 9px; text-align: right; }
th { background: #eef1f5; }
td:first-child, th:first-child { text-align: left; }
code, pre { background: #f4f4f4; border-radius: 3px; font-size: 13px; }
pre { padding: .6em; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #ddd; }
.ok { color: #127a1f; font-weight: 600; } .bad { color: #b00020; font-weight: 600; }
.bounded { color: #8a5a00; font-weight: 600; }
footer { margin-top: 2em; color: #666; font-size: 12px; }
"""


@dataclass
class Document:
    """An ordered list of blocks: headings, paragraphs, tables, images, code."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str) -> Document:
        self.blocks.append(("h2", text))
        return self

    def paragraph(self, text: str) -> Document:
        self.blocks.append(("p", text))
        return self

    def bullets(self, items: Sequence[str]) -> Document:
        self.blocks.append(("ul", list(items)))
        return self

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Document:
        self.blocks.append(("table", (list(headers), [list(r) for r in rows])))
        return self

    def image(self, filename: str, caption: str) -> Document:
        """A PNG in the report's folder (give its file name)."""
        self.blocks.append(("img", (filename, caption)))
        return self

    def code(self, text: str) -> Document:
        self.blocks.append(("code", text))
        return self

    def provenance(self, command: str | None = None) -> Document:
        """The exact command and the versions that produced the report."""
        record = provenance_record(command)
        self.heading("Provenance")
        self.bullets([f"command: `{record['command']}`", f"isospike {record['isospike']}, torch {record['torch']}, "
                      f"Python {record['python']}, {record['platform']}"])
        return self

    # ------------------------------------------------------------------ rendering
    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "h2":
                out += [f"## {value}", ""]
            elif kind == "p":
                out += [value, ""]
            elif kind == "ul":
                out += [f"- {v}" for v in value] + [""]
            elif kind == "table":
                out += [markdown_table(*value), ""]
            elif kind == "img":
                out += [f"![{value[1]}]({value[0]})", ""]
            elif kind == "code":
                out += ["```", value, "```", ""]
        return "\n".join(out)

    def to_html(self, folder: Path) -> str:
        parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                 f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>",
                 f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "h2":
                parts.append(f"<h2>{html.escape(value)}</h2>")
            elif kind == "p":
                parts.append(f"<p>{_inline(value)}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{_inline(v)}</li>" for v in value) + "</ul>")
            elif kind == "table":
                headers, rows = value
                head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
                body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif kind == "img":
                path = folder / value[0]
                if path.is_file():
                    data = base64.b64encode(path.read_bytes()).decode("ascii")
                    parts.append(f'<figure><img alt="{html.escape(value[1])}" src="data:image/png;base64,{data}">'
                                 f"<figcaption>{html.escape(value[1])}</figcaption></figure>")
                else:
                    parts.append(f"<p><em>missing plot {html.escape(value[0])}</em></p>")
            elif kind == "code":
                parts.append(f"<pre><code>{html.escape(value)}</code></pre>")
        parts.append("<footer>written by isospike</footer></body></html>")
        return "\n".join(parts)

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """Write ``report.md`` and ``report.html`` into ``folder`` (each atomically)."""
        folder = Path(folder)
        md = atomic_write_text(folder / "report.md", self.to_markdown())
        page = atomic_write_text(folder / "report.html", self.to_html(folder))
        return md, page


def command_line(args: Any = None) -> str:
    """The command that is running: ``args.command_line`` when :func:`isospike.cli.main` set it
    (its own argv, also when called from Python), else ``sys.argv``."""
    recorded = getattr(args, "command_line", None)
    return recorded or "isospike " + shlex.join(sys.argv[1:])


def provenance_record(command: str | None = None) -> dict[str, str]:
    """Command and versions, for reports and JSON results (default command: :func:`command_line`)."""
    import torch

    import isospike

    return {"command": command or command_line(), "isospike": isospike.__version__, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def _cell(value: Any) -> str:
    text = fmt(value)
    if text in ("yes", "NO"):
        return f'<span class="{"ok" if text == "yes" else "bad"}">{text}</span>'
    if text.startswith(("bounded: ", "bounded error: ")):  # a statistical certificate, not a failure
        return f'<span class="bounded">{html.escape(text)}</span>'
    return html.escape(text)


def _inline(text: str) -> str:
    """Escape, then render `code` and **bold** spans (the only inline markup the reports use)."""
    out, code, bold = [], False, False
    i = 0
    while i < len(text):
        if text[i] == "`":
            out.append("</code>" if code else "<code>")
            code = not code
            i += 1
        elif text.startswith("**", i) and not code:
            out.append("</strong>" if bold else "<strong>")
            bold = not bold
            i += 2
        else:
            out.append(html.escape(text[i]))
            i += 1
    if code:
        out.append("</code>")
    if bold:
        out.append("</strong>")
    return "".join(out)
