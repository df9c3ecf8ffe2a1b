"""What makes genbench's pages interactive, shared by the report and the history page: plotly
(the optional extra `genbench[pages]`) with its plotly.js written beside the page, so that a
page works offline from a file:// URL and fetches nothing; tables that sort on a click. Without
plotly, or with `--static`, the pages draw PNGs.
"""

from __future__ import annotations

import json
from pathlib import Path

SORTABLE = """<script>
for (const t of document.querySelectorAll('table.sortable')) {
  t.querySelectorAll('th').forEach((th, i) => th.addEventListener('click', () => {
    const rows = [...t.querySelectorAll('tr')].slice(1), asc = th.dataset.asc !== '1';
    const key = r => { const x = r.children[i].innerText, n = parseFloat(x.replace(/[^0-9eE.+-]/g, ''));
                       return isNaN(n) ? x : n; };
    rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1));
    th.dataset.asc = asc ? '1' : '0'; rows.forEach(r => t.appendChild(r));
  }));
}
</script>"""


def plotly_available() -> bool:
    try:
        import plotly  # noqa: F401
    except ImportError:
        return False
    return True


def write_plotly_js(dest: Path) -> str:
    """plotly.js beside the page (once): what the interactive charts load, offline."""
    from plotly.offline import get_plotlyjs

    js = dest / "plotly.min.js"
    if not js.is_file():
        js.write_text(get_plotlyjs())
    return js.name


def chart(div_id: str, figure: dict) -> str:
    """A div and the script that draws `figure` ({"data": traces, "layout": ...}) in it."""
    spec = json.dumps(figure, default=float).replace("</", "<\\/")
    return (f'<div class="chart" id="{div_id}"></div><script>Plotly.newPlot("{div_id}", '
            f'...(f => [f.data, f.layout])({spec}), {{displayModeBar: false, responsive: true}});'
            f'</script>')
