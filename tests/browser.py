"""Render markdown as GitHub shows it in a pull request comment, in headless Chromium.

GitHub's pipeline, as far as layout goes: GFM through cmark-gfm (cmarkgfm is its Python
binding), GitHub's markdown stylesheet (tests/github-markdown.css), inside a comment body
about 780 px wide. A script in the page measures the layout and leaves the figures in
the DOM, which `chromium --dump-dom` prints; `--screenshot` keeps a picture of it.
The .markdown-body box has GitHub's comment padding (16 px) around a 780 px body.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import cmarkgfm
from cmarkgfm.cmark import Options

HERE = Path(__file__).resolve().parent
COMMENT_WIDTH = 780         # px: the body of a PR comment on github.com
MARGIN = 16                 # px: the comment's padding, white around the body
TIMEOUT = 60.0
ALERT_TITLES = {"NOTE": "Note", "TIP": "Tip", "IMPORTANT": "Important",
                "WARNING": "Warning", "CAUTION": "Caution"}

# Runs when the page is opened with #measure. For each report: unfold its <details> (a
# table folded away still has to fit once unfolded), measure its tables, fold them again,
# then measure its blocks as GitHub first shows them. Positions are relative to the report.
MEASURE = """
<script>
if (location.hash === "#measure") {
  const box = (el, top) => { const r = el.getBoundingClientRect();
    return {top: r.top - top, bottom: r.bottom - top, left: r.left, right: r.right}; };
  const reports = {};
  for (const body of document.querySelectorAll(".markdown-body")) {
    const style = getComputedStyle(body);
    const pad = ["Top", "Right", "Bottom", "Left"].map(k => parseFloat(style["padding" + k]));
    const top = body.getBoundingClientRect().top + pad[0];
    body.querySelectorAll("details").forEach(d => { d.open = true; });
    const tables = [...body.querySelectorAll("table")].map(t => ({
      scrollWidth: t.scrollWidth, clientWidth: t.clientWidth, box: box(t, top),
      folded: t.closest("details") !== null,
      rows: [...t.rows].map(r => ({box: box(r, top), cells: [...r.cells].map(c => ({
        text: c.textContent.trim(), box: box(c, top)}))}))}));
    body.querySelectorAll("details").forEach(d => { d.open = false; });
    const outer = body.getBoundingClientRect();
    reports[body.id] = {
      top: outer.top + window.scrollY, height: outer.height,
      bodyWidth: body.clientWidth - pad[1] - pad[3],
      bodyScrollWidth: body.scrollWidth - pad[1] - pad[3],
      bodyLeft: outer.left + pad[3], bodyRight: outer.right - pad[1], tables: tables,
      blocks: [...body.children].map(el => ({tag: el.tagName.toLowerCase(),
        cls: el.className, text: el.textContent.trim().slice(0, 300), box: box(el, top)}))};
  }
  const out = document.createElement("pre");
  out.id = "gate-measure";
  out.textContent = JSON.stringify({height: document.documentElement.scrollHeight,
                                    reports: reports});
  document.body.appendChild(out);
}
</script>
"""


@dataclass(frozen=True)
class Page:
    path: Path
    measured: dict[str, Any]
    screenshot: Path


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("headless Chromium not found: run .ci/stack-setup.sh as root "
                           "(it installs Debian's chromium package)")
    return found


def to_html(markdown: str) -> str:
    """GFM as GitHub renders it, plus GitHub's alert boxes for > [!NOTE] and the like."""
    # UNSAFE keeps raw HTML (<details>) as GitHub does; GitHub's sanitiser then drops
    # comments, which the browser does not show anyway.
    out = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    return _alerts(_mermaid(out))


def _alerts(out: str) -> str:
    kinds = "|".join(ALERT_TITLES)
    opening = re.compile(rf"<blockquote>\n<p>\[!({kinds})\](</p>\n|\n)")
    while found := opening.search(out):
        kind = found.group(1)
        rest = "" if found.group(2).startswith("</p>") else "<p>"
        head = (f'<div class="markdown-alert markdown-alert-{kind.lower()}">'
                f'<p class="markdown-alert-title">{ALERT_TITLES[kind]}</p>\n{rest}')
        end = out.index("</blockquote>", found.end())
        out = out[:found.start()] + head + out[found.end():end] + "</div>" + \
            out[end + len("</blockquote>"):]
    return out


def _mermaid(out: str) -> str:
    # GitHub draws these as a chart in a frame it sizes itself; a box of its usual height
    # stands in for it, so the layout below it is where it would be.
    return re.sub(r'<pre lang="mermaid"><code>.*?</code></pre>',
                  '<div style="height:400px;border:1px dashed #d1d9e0;border-radius:6px;'
                  'margin-bottom:16px;display:flex;align-items:center;'
                  'justify-content:center;color:#59636e">Mermaid chart (drawn by GitHub)'
                  '</div>', out, flags=re.S)


def page(reports: Mapping[str, str]) -> str:
    """One page, the reports one under the other, each in a comment-wide body."""
    css = (HERE / "github-markdown.css").read_text(encoding="utf-8")
    bodies = "".join(f'<article class="markdown-body" id="{name}">\n{to_html(markdown)}'
                     f'</article>\n' for name, markdown in reports.items())
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><style>\n" + css +
            f"\nbody {{ margin: 0; background: #ffffff; }}\n"
            f".markdown-body {{ width: {COMMENT_WIDTH}px; padding: {MARGIN}px; }}\n"
            f"</style></head>\n<body>\n{bodies}{MEASURE}</body></html>\n")


def render_all(reports: Mapping[str, str], folder: Path) -> dict[str, Page]:
    """Lay reports out in Chromium: measurements from the DOM and a screenshot of each.

    All on one page, so Chromium starts twice whatever the number of reports.
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, markdown in reports.items():      # each on its own, to open by hand
        (folder / f"{name}.html").write_text(page({name: markdown}), encoding="utf-8")
    path = folder / "all-reports.html"
    path.write_text(page(reports), encoding="utf-8")
    width = COMMENT_WIDTH + 2 * MARGIN
    dom = _run(["--dump-dom", f"--window-size={width},800", f"{path.as_uri()}#measure"])
    found = re.search(r'<pre id="gate-measure">(.*?)</pre>', dom, flags=re.S)
    if not found:
        raise AssertionError(f"the page did not measure itself: {dom[-500:]}")
    measured = json.loads(html.unescape(found.group(1)))
    whole = folder / "all-reports.png"
    _run([f"--screenshot={whole}", f"--window-size={width},{int(measured['height'])}",
          path.as_uri()])
    pages = {}
    with Image.open(whole) as image:
        for name in reports:
            box = measured["reports"][name]
            shot = folder / f"{name}.png"
            image.crop((0, int(box["top"]), width,
                        int(box["top"] + box["height"]))).save(shot)
            pages[name] = Page(folder / f"{name}.html", box, shot)
    return pages


def _run(args: list[str]) -> str:
    # A profile of its own per call: concurrent Chromiums must not share one.
    with tempfile.TemporaryDirectory(prefix="gate-chromium-") as profile:
        done = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--hide-scrollbars", "--force-device-scale-factor=1", "--disable-extensions",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise AssertionError(f"chromium failed ({done.returncode}): {done.stderr[-1000:]}")
    return done.stdout
