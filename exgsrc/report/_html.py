"""HTML building blocks for self-contained reports.

Everything a report needs is inline: CSS in a ``<style>`` element, a few lines
of JavaScript (sorting and filtering tables, time sliders), and figures as
base64 PNG (or JPEG, for the frames of a slider) ``data:`` URIs. A Content-Security-Policy meta tag forbids the page from fetching
anything, so a report opens offline and never touches the network.

Every string that may come from an input file goes through :func:`esc`;
pre-built HTML is wrapped in :class:`Markup` so it is not escaped twice.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "DPI",
    "FIGURE_HOOKS",
    "Markup",
    "esc",
    "fig_to_img",
    "notice",
    "page",
    "section",
    "slider",
    "status_badge",
    "table",
]

STATUS_ORDER = {"ok": 0, "warning": 1, "missing": 2, "failed": 3}

#: resolution of the embedded figures: an 11-inch figure is 1 100 px, shown at that size
DPI = 100

#: callables given every figure just before it is embedded (tests check its layout)
FIGURE_HOOKS: list = []


class Markup(str):
    """A string that already is safe HTML (never escaped again)."""

    __slots__ = ()


def esc(value) -> Markup:
    """HTML-escape ``value`` (quotes included) unless it already is :class:`Markup`."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def worst_status(statuses: Iterable[str]) -> str:
    """The most severe of ``statuses`` (ok < warning < missing < failed)."""
    worst = "ok"
    for s in statuses:
        if STATUS_ORDER.get(s, 3) > STATUS_ORDER[worst]:
            worst = s if s in STATUS_ORDER else "failed"
    return worst


def fig_to_img(fig, alt: str = "figure", dpi: int = DPI) -> Markup:
    """Render a matplotlib Figure to an inline ``<img>`` with a base64 PNG data URI.

    The figure is drawn with the Agg canvas (no display, no pyplot state); its
    size in pixels is its size in inches times ``dpi`` and is written on the
    ``<img>`` so the page lays out before the image decodes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    alt : str
        Alternative text (escaped).
    dpi : int

    Returns
    -------
    Markup
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    # drawn at the embedding resolution (layout included, as savefig does) and
    # encoded once from the raw pixels: no full-colour PNG written and re-read
    fig.set_dpi(dpi)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    for hook in FIGURE_HOOKS:
        hook(fig)
    h, w = rgba.shape[:2]
    data = base64.b64encode(_palette_png(rgba)).decode("ascii")
    return Markup(
        f'<img class="fig" alt="{esc(alt)}" width="{w}" height="{h}" '
        f'src="data:image/png;base64,{data}">'
    )


def _palette_png(rgba) -> bytes:
    """PNG with 256 colours (no dithering) of an RGBA pixel array (rows, columns, 4).

    A third of the size of a full-colour PNG, no visible change (median-cut
    palette; the faster octree one bands the shaded surfaces).
    """
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(rgba[..., :3]))
    out = io.BytesIO()
    try:
        q = im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        # zlib level 6, not optimize=True (level 9): ~10x faster, files ~5 % larger
        q.save(out, "PNG")
    except Exception:  # noqa: BLE001 - keep the full colours
        out = io.BytesIO()
        im.save(out, "PNG")
    return out.getvalue()


def slider(frames, alt: str, start: int = 0, what: str = "time") -> Markup:
    """Pre-rendered JPEG frames with a range input that shows one at a time.

    Without JavaScript the ``start`` frame shows. The inline script in :func:`page`
    switches the frames as the slider moves.

    Parameters
    ----------
    frames : list of (str, bytes)
        Label (e.g. ``"120 ms"``) and JPEG of each frame.
    alt : str
        Alternative text; each frame adds its label.
    start : int
        Frame shown first.
    what : str
        What the slider moves through (its accessible name).

    Returns
    -------
    Markup
    """
    start = min(max(int(start), 0), len(frames) - 1)
    imgs = []
    for i, (label, jpeg) in enumerate(frames):
        data = base64.b64encode(jpeg).decode("ascii")
        hidden = "" if i == start else " hidden"
        imgs.append(
            f'<img class="frame" alt="{esc(f"{alt}, {label}")}" data-label="{esc(label)}"'
            f'{hidden} src="data:image/jpeg;base64,{data}">'
        )
    return Markup(
        '<div class="slider">' + "".join(imgs) + f'<div class="slider-ctl"><label>{esc(what)} '
        f'<input type="range" min="0" max="{len(frames) - 1}" step="1" value="{start}" '
        f'aria-label="{esc(what)}"></label> <output>{esc(frames[start][0])}</output></div></div>'
    )


def status_badge(status: str) -> Markup:
    """A coloured badge for ``ok``/``warning``/``missing``/``failed``."""
    s = status if status in STATUS_ORDER else "failed"
    return Markup(f'<span class="badge st-{s}">{esc(s)}</span>')


def notice(status: str, what: str, reason: str) -> Markup:
    """A block saying that ``what`` is ``status`` (failed/missing/warning) because ``reason``."""
    s = status if status in STATUS_ORDER else "failed"
    return Markup(
        f'<div class="notice st-{s}-bg"><strong>{esc(s)}: {esc(what)}</strong>'
        f" &mdash; {esc(reason)}</div>"
    )


def section(anchor: str, title: str, body: str, status: str = "ok") -> Markup:
    """A report section with a status badge in its heading."""
    return Markup(
        f'<section id="{esc(anchor)}"><h2>{esc(title)} {status_badge(status)}</h2>\n'
        f"{body}\n</section>"
    )


def table(
    headers: Sequence,
    rows: Iterable[Sequence],
    *,
    table_id: str | None = None,
    sortable: bool = False,
    row_classes: Sequence[str] | None = None,
    box: str = "scroll",
) -> Markup:
    """An HTML table in a box that scrolls sideways when the table is wider than the page.

    Cells are escaped unless they are :class:`Markup`. A cell may also be a
    ``(value, sort_key)`` or ``(value, sort_key, css_class)`` tuple; ``sort_key``
    goes into ``data-sort`` for the sorting script. Numbers are formatted compactly.

    Parameters
    ----------
    headers : sequence
    rows : iterable of sequence
    table_id : str | None
    sortable : bool
        Click a header to sort (the inline script).
    row_classes : sequence of str | None
        A CSS class per row.
    box : str
        CSS class of the box: ``scroll`` (scrolls sideways), ``tablebox`` (scrolls
        both ways, sticky header and first column).

    Returns
    -------
    Markup
    """
    cls = ' class="sortable"' if sortable else ""
    tid = f' id="{esc(table_id)}"' if table_id else ""
    out = [f'<div class="{esc(box)}"><table{tid}{cls}><thead><tr>']
    out += [
        f'<th title="click to sort">{esc(h)}</th>' if sortable else f"<th>{esc(h)}</th>"
        for h in headers
    ]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(rows):
        rc = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        out.append(f"<tr{rc}>")
        for cell in row:
            attrs = ""
            if isinstance(cell, tuple):
                if len(cell) > 2 and cell[2]:
                    attrs = f' class="{esc(cell[2])}"'
                cell, key = cell[0], cell[1]
                attrs += f' data-sort="{esc(key)}"'
            elif isinstance(cell, int | float) and not isinstance(cell, bool):
                attrs = f' data-sort="{esc(cell)}"'
            out.append(f"<td{attrs}>{_fmt(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return Markup("".join(out))


def _fmt(v) -> Markup:
    if isinstance(v, Markup):
        return v
    if v is None:
        return Markup("&ndash;")
    if isinstance(v, float):
        if v != v:  # NaN
            return Markup("&ndash;")
        return esc(f"{v:.4g}")
    return esc(v)


def dl(items: Iterable[tuple[str, object]]) -> Markup:
    """A definition list of (key, value) pairs, both escaped."""
    parts = ["<dl>"]
    for k, v in items:
        parts.append(f"<dt>{esc(k)}</dt><dd>{_fmt(v)}</dd>")
    parts.append("</dl>")
    return Markup("".join(parts))


def pre_json(obj) -> Markup:
    """Pretty JSON of ``obj`` in an escaped ``<pre>``."""
    return Markup(f"<pre>{esc(json.dumps(obj, indent=2, sort_keys=True, default=str))}</pre>")


_CSS = """
:root{--ok:#1b7f3b;--warning:#b36b00;--missing:#6b6b6b;--failed:#b00020}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:1em 1.5em;color:#222;line-height:1.4}
h1{margin-bottom:.2em;overflow-wrap:anywhere}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em;overflow-wrap:anywhere}
nav a{margin-right:1em}.navitem{white-space:nowrap;margin-right:.6em}
.badge{display:inline-block;padding:.1em .5em;border-radius:.4em;color:#fff;font-size:.75em;
vertical-align:middle}
.st-ok{background:var(--ok)}.st-warning{background:var(--warning)}.st-missing{background:var(--missing)}
.st-failed{background:var(--failed)}
.notice{border-left:.4em solid;padding:.5em 1em;margin:.5em 0;background:#f7f7f7;overflow-wrap:anywhere}
.st-ok-bg{border-color:var(--ok)}.st-warning-bg{border-color:var(--warning);background:#fff6e5}
.st-missing-bg{border-color:var(--missing);background:#f0f0f0}
.st-failed-bg{border-color:var(--failed);background:#fdecee}
.statusline{font-size:1.15em;padding:.6em 1em;border-radius:.3em;margin:.5em 0 1em 0}
.statusline ol{margin:.3em 0 0 0;padding-left:1.4em;font-size:.85em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f0f0f0}
table.sortable th{cursor:pointer;user-select:none}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
.tablebox{overflow:auto;max-width:100%;max-height:75vh;border:1px solid #ddd;margin:.5em 0}
.tablebox table{margin:0;border-collapse:separate;border-spacing:0}
.tablebox th{position:sticky;top:0;z-index:2;min-width:6em;max-width:11em;overflow-wrap:normal}
.tablebox td{white-space:nowrap;overflow-wrap:normal}
.tablebox td:first-child,.tablebox th:first-child{position:sticky;left:0;z-index:1;background:#fff}
.tablebox th:first-child{z-index:3;background:#f0f0f0}
.tablebox td.wrap{white-space:normal;min-width:18em;max-width:30em}
.tablebox td.wrap-s{white-space:normal;min-width:8em;max-width:14em}
td.outlier{background:#ffe0e0;font-weight:bold}
tr.st-row-failed td:first-child{border-left:.3em solid var(--failed)}
tr.st-row-warning td:first-child{border-left:.3em solid var(--warning)}
img.fig{max-width:100%;height:auto;display:block;margin:.4em 0}
.slider{margin:.4em 0 1em 0}.slider img.frame{max-width:100%;height:auto;display:block}
.slider img.frame[hidden]{display:none}
.slider-ctl{display:flex;align-items:center;gap:1em;flex-wrap:wrap}
.slider-ctl input{width:min(36em,60vw);vertical-align:middle}.slider-ctl output{font-weight:bold}
.figrow{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}dt{font-weight:bold}
dd{margin:0;overflow-wrap:anywhere;min-width:0}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em;max-height:30em}
.scroll{overflow-x:auto;max-width:100%}
p.caption{color:#444;margin:.2em 0 .6em 0;max-width:60em}
input.filter{padding:.3em;width:20em;max-width:100%;margin:.3em 0}
footer{margin-top:3em;color:#777;font-size:.8em}
"""

# Sort on header click (numeric when both keys parse as numbers), filter rows by text.
_JS = """
(function(){
function key(td){var k=td.getAttribute('data-sort');return k===null?td.textContent.trim():k;}
function cmp(a,b){var x=parseFloat(a),y=parseFloat(b);
 if(!isNaN(x)&&!isNaN(y)&&isFinite(a)&&isFinite(b)){return x-y;}return a.localeCompare(b);}
document.querySelectorAll('table.sortable').forEach(function(t){
 var ths=t.tHead?t.tHead.rows[0].cells:[];
 Array.prototype.forEach.call(ths,function(th,i){th.addEventListener('click',function(){
  var asc=!th.classList.contains('sorted-asc');
  Array.prototype.forEach.call(ths,function(h){h.classList.remove('sorted-asc','sorted-desc');});
  th.classList.add(asc?'sorted-asc':'sorted-desc');
  var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(r1,r2){var c=cmp(key(r1.cells[i]),key(r2.cells[i]));return asc?c:-c;});
  rows.forEach(function(r){body.appendChild(r);});});});});
document.querySelectorAll('input.filter').forEach(function(inp){
 var t=document.getElementById(inp.getAttribute('data-table'));if(!t){return;}
 inp.addEventListener('input',function(){var q=inp.value.toLowerCase();
  Array.prototype.forEach.call(t.tBodies[0].rows,function(r){
   r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});});});
document.querySelectorAll('div.slider').forEach(function(s){
 var imgs=s.querySelectorAll('img.frame'),inp=s.querySelector('input[type=range]'),
  out=s.querySelector('output');if(!inp){return;}
 function show(){var k=parseInt(inp.value,10);
  Array.prototype.forEach.call(imgs,function(im,i){im.hidden=(i!==k);});
  if(out&&imgs[k]){out.textContent=imgs[k].getAttribute('data-label');}}
 inp.addEventListener('input',show);inp.addEventListener('change',show);show();});
})();
"""

_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


def page(title: str, body: str, *, generator: str = "exgsrc") -> Markup:
    """A complete HTML5 document with inline CSS/JS and a no-network CSP."""
    return Markup(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="{esc(generator)}">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n"
        # no favicon request: an empty data URI
        '<link rel="icon" href="data:,">\n'
        f"</head><body>\n{body}\n<script>{_JS}</script>\n</body></html>\n"
    )


_FOOTER = (
    "<footer>Generated by exgsrc. Self-contained: figures are embedded, "
    "no network access.</footer>"
)


def render_page(title: str, body_parts: list[str], out=None) -> str:
    """Join body parts and the footer into a page; write it atomically to ``out`` if given.

    The file is written under a temporary name in the same folder and renamed,
    so an interrupted run never leaves a report that looks complete.
    """
    html = str(page(title, "\n".join([*body_parts, _FOOTER])))
    if out is not None:
        from ..store import write_text_atomic

        write_text_atomic(out, html)
    return html
