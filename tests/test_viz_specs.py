"""The pictures read their gate tables from the cell specs, and lstmkit.viz has no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from matplotlib.text import Text

import lstmkit
from lstmkit.reference.spec import KINDS, spec
from lstmkit.viz.experiments import adding, gradient_flow
from lstmkit.viz.experiments.common import make_rnn
from lstmkit.viz.explain import explain
from lstmkit.viz.heatmap import explanation_figure, explanation_html
from test_viz_fakes import FakeRun

TEXT = "但是很好"


@pytest.mark.parametrize("kind", list(KINDS))
def test_explain_panels_titles_and_name_come_from_the_spec(kind):
    exp = explain(FakeRun(TEXT, kind=kind), TEXT)
    s = spec(kind)
    assert exp.kind == s.kind
    assert exp.panels == [g for g in s.panels if g.key in exp.gates] and exp.panels
    fig = explanation_figure(exp, top_k=2)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    for gate in exp.panels:
        assert gate.math in titles
    assert fig.texts[0].get_text().startswith(f"{s.class_name} layer")  # the suptitle
    page = explanation_html(exp, top_k=2)
    for gate in exp.panels:
        assert f"{gate.title} (mean)" in page
    # sigmoid gates are drawn on the fixed (0, 1) scale, the others centred on 0
    for ax, gate in zip(fig.axes[1::3], exp.panels):
        lo, hi = ax.get_images()[0].norm.vmin, ax.get_images()[0].norm.vmax
        assert (lo, hi) == (0.0, 1.0) if gate.unit_range else lo == -hi


@pytest.mark.parametrize("kind", list(KINDS))
def test_figure_titles_and_character_ticks_do_not_overlap(kind):
    exp = explain(FakeRun(TEXT, kind=kind), TEXT)
    fig = explanation_figure(exp, top_k=2)  # short: an RNN's figure has one panel
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    top = fig.axes[0]
    sup = fig.texts[0].get_window_extent(renderer)
    wanted = top.get_title(loc="left")
    (title,) = top.findobj(lambda a: isinstance(a, Text) and a.get_text() == wanted)
    head = title.get_window_extent(renderer)
    ticks = [t.get_window_extent(renderer) for t in top.get_xticklabels() if t.get_text()]
    assert sup.y0 > head.y1  # the suptitle sits above the axis title ...
    assert head.y0 > max(b.y1 for b in ticks)  # ... which sits above the character ticks
    assert sup.y1 <= fig.bbox.y1  # and nothing is cut off at the top


def test_experiments_compare_every_cell_family_of_the_specs():
    assert sorted(k for _, k in adding.KINDS) == sorted(KINDS)
    assert [label for label, _ in adding.KINDS] == [spec(k).class_name for k in KINDS]
    assert {k for _, k, _ in gradient_flow.CONFIGS} == set(KINDS)
    for kind in KINDS:
        assert isinstance(make_rnn(kind, 2, 3), getattr(lstmkit, spec(kind).class_name))


def _imports(path: Path, module: str) -> set[str]:
    """Modules ``path`` imports (at any depth: function-level imports count too)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return out


def test_viz_has_no_import_cycle():
    root = Path(lstmkit.__file__).parent
    modules = {}
    for path in (root / "viz").rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {m: {d for d in _imports(p, m) if d in modules and d != m} for m, p in modules.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start] - seen:
            seen.add(nxt)
            if nxt == goal or reaches(nxt, goal, seen):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, set()))
    assert cycles == [], f"import cycles through {cycles}"
