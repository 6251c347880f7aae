"""What a reader's browser shows: open a built page in headless Chromium after MathJax has run.

:func:`inspect_page` copies the page beside itself with a small script appended; once MathJax
has typeset, the script writes into ``document.title`` what it found, and Chromium's
``--dump-dom`` hands the title back. Virtual time makes the waiting cost nothing. It reports:

* ``merror``: MathJax error nodes (``mjx-merror``), e.g. "\\tag not allowed in split environment";
* ``clipped``: display equations and tables whose content is wider than the text column with no
  element between them and the column that scrolls horizontally: the reader cannot see all of it;
* ``roles``: MyST roles that reached the page as literal text (``{glue:text}`...``), outside code.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

_SCRIPT = r"""
<script>
(function () {
  function clipped(inner, start) {
    // Walk up from the content: the first box that does not let it overflow decides.
    var w = inner.getBoundingClientRect().width, p = start;
    while (p && p !== document.body) {
      var o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll') return false;              // the reader can scroll to it
      if ((o === 'hidden' || o === 'clip') && w > p.clientWidth + 1) return true;
      if (p.tagName === 'ARTICLE') return w > p.getBoundingClientRect().width + 1;  // wider than the column
      p = p.parentElement;
    }
    return false;
  }
  function label(el) {
    var t = (el.textContent || '').replace(/\s+/g, ' ').trim();
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ': ' + t.slice(0, 60);
  }
  function report() {
    var r = {merror: [], clipped: [], roles: [], n_math: 0, n_tables: 0, mathjax: !!window.MathJax};
    document.querySelectorAll('mjx-merror').forEach(function (e) {
      r.merror.push((e.getAttribute('data-mjx-error') || e.textContent || '').slice(0, 80));
    });
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (c) {
      r.n_math += 1;
      if (clipped(c.querySelector('mjx-math') || c, c)) r.clipped.push(label(c));
    });
    document.querySelectorAll('article table').forEach(function (t) {
      r.n_tables += 1;
      var o = getComputedStyle(t).overflowX;
      var own = (o === 'auto' || o === 'scroll') ? false : null;
      if (own === null ? clipped(t, t.parentElement) : own) r.clipped.push(label(t));
    });
    var art = document.querySelector('article') || document.body;
    var clone = art.cloneNode(true);
    clone.querySelectorAll('pre, .highlight').forEach(function (e) { e.remove(); });
    var m = (clone.textContent || '').match(/\{(glue:text|glue:md|glue:figure|glue|ref|eq|numref|doc|math)\}`?/g);
    if (m) r.roles = m.slice(0, 10);
    document.title = 'TVQCHECK' + JSON.stringify(r);
  }
  window.addEventListener('load', function () {
    var later = function () { setTimeout(report, 1000); };
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) MathJax.startup.promise.then(later);
    else setTimeout(report, 4000);
  });
})();
</script>
"""


def inspect_page(page: Path, width: int = 1280, height: int = 2000, timeout: int = 120) -> dict:
    """Open ``page`` (an HTML file of a built book) at ``width`` px and report what the reader sees."""
    if CHROMIUM is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
    html = page.read_text(encoding="utf-8")
    probe = page.with_name(f".probe-{page.name}")
    probe.write_text(html.replace("</body>", _SCRIPT + "</body>") if "</body>" in html else html + _SCRIPT,
                     encoding="utf-8")
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "--virtual-time-budget=30000",
             "--dump-dom", probe.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout)
    finally:
        probe.unlink(missing_ok=True)
        shutil.rmtree(profile, ignore_errors=True)
    m = re.search(r"<title>TVQCHECK(.*?)</title>", proc.stdout, flags=re.S)
    if not m:
        raise RuntimeError(f"{page.name}: the page reported nothing (chromium exit {proc.returncode}: "
                           f"{proc.stderr[-500:]})")
    import html as html_mod

    return json.loads(html_mod.unescape(m.group(1)))


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of ``page`` as the reader sees it at ``width`` px (for a person to look at)."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                        f"--window-size={width},{height}", "--virtual-time-budget=30000", "--hide-scrollbars",
                        f"--screenshot={out}", page.resolve().as_uri()], capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return out
