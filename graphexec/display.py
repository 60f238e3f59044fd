"""Graphs as SVG pictures for Jupyter (`_repr_svg_` of Graph, Operation, Program and Plan), in pure Python.

A layered layout, no Graphviz needed: each box sits one layer below the deepest box it reads, boxes in a
layer are ordered by where their inputs are, and each edge is a curve from its producer to its consumer
labelled with the tensor's dtype and shape. Every box is an SVG group of class "node" whose <title> is its
name; every edge is a group of class "edge" titled "producer->consumer", so a test (or a reader's script)
can find them.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from graphexec import ir

MAX_BOXES = 400  # larger graphs draw their first MAX_BOXES boxes and say how many were left out
CHAR_W, LINE_H, PAD, GAP_X, GAP_Y = 7.0, 14.0, 6.0, 24.0, 46.0
FILL = {"op": "#e8f0fe", "feed": "#fff4d6", "const": "#eeeeee", "variable": "#e6f4ea", "fused": "#fde7e9",
        "fetch": "#f3e8fd"}


@dataclass
class Box:
    """One node of a picture: `lines` of text (the first is bold), and the boxes it reads with edge labels."""

    key: str
    lines: list[str]
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (producer key, edge label)
    kind: str = "op"
    dashed_inputs: list[str] = field(default_factory=list)  # control edges

    @property
    def width(self) -> float:
        return max(len(line) for line in self.lines) * CHAR_W + 2 * PAD

    @property
    def height(self) -> float:
        return len(self.lines) * LINE_H + 2 * PAD


def _layers(boxes: list[Box]) -> list[list[Box]]:
    """Boxes by layer (longest path from a source), each layer ordered by its inputs' mean position."""
    depth: dict[str, int] = {}
    for box in boxes:  # boxes come in a topological order
        parents = [depth[k] for k, _ in box.inputs if k in depth] + [depth[k] for k in box.dashed_inputs
                                                                       if k in depth]
        depth[box.key] = 1 + max(parents, default=-1)
    consumers: dict[str, list[int]] = {}
    for box in boxes:
        for key in [k for k, _ in box.inputs] + box.dashed_inputs:
            consumers.setdefault(key, []).append(depth[box.key])
    for box in boxes:  # a source (constant, feed) sits just above its first consumer, not at the top
        if not box.inputs and not box.dashed_inputs and box.key in consumers:
            depth[box.key] = min(consumers[box.key]) - 1
    layers: list[list[Box]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    position: dict[str, float] = {}
    for box in boxes:
        layers[depth[box.key]].append(box)
    for layer in layers:
        order = {box.key: index - len(layer) / 2 for index, box in enumerate(layer)}

        def barycenter(box, order=order):
            places = [position[k] for k, _ in box.inputs if k in position]
            return sum(places) / len(places) if places else order[box.key]
        layer.sort(key=barycenter)
        for index, box in enumerate(layer):
            position[box.key] = index - len(layer) / 2
    return layers


def render(boxes: list[Box], title: str = "") -> str:
    """The SVG document of `boxes` (in topological order)."""
    left_out = max(0, len(boxes) - MAX_BOXES)
    boxes = boxes[:MAX_BOXES]
    layers = _layers(boxes)
    widths = [sum(b.width for b in layer) + GAP_X * (len(layer) - 1) for layer in layers]
    total_w = max(widths, default=100.0) + 2 * GAP_X
    where: dict[str, tuple[float, float, Box]] = {}  # key -> (x, y) of the box's top-left corner
    y = GAP_Y / 2 + (LINE_H if title else 0)
    for layer, width in zip(layers, widths):
        x = (total_w - width) / 2
        for box in layer:
            where[box.key] = (x, y, box)
            x += box.width + GAP_X
        y += max(b.height for b in layer) + GAP_Y
    total_h = y - GAP_Y / 2 + (LINE_H if left_out else 0)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" height="{total_h:.0f}" '
              f'viewBox="0 0 {total_w:.0f} {total_h:.0f}" font-family="monospace" font-size="11">'),
             ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
              'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>')]
    if title:
        parts.append(f'<text x="{GAP_X / 2}" y="{LINE_H}" font-weight="bold">{html.escape(title)}</text>')
    for box in boxes:
        edges = [(k, label, False) for k, label in box.inputs] + [(k, "", True) for k in box.dashed_inputs]
        for index, (key, label, dashed) in enumerate(edges):
            if key in where:
                at = (index + 1) / (len(edges) + 1)  # where the edge meets the consumer's top side
                parts.append(_edge(where[key], where[box.key], at, key, box.key, label, dashed))
    for box in boxes:
        parts.append(_box(*where[box.key]))
    if left_out:
        parts.append(f'<text x="{GAP_X / 2}" y="{total_h - 4:.0f}">... {left_out} more nodes not drawn</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _box(x: float, y: float, box: Box) -> str:
    dash = ' stroke-dasharray="4,2"' if box.kind == "feed" else ""
    looks = ['font-weight="bold"'] + ['fill="#444"'] * (len(box.lines) - 1)
    texts = "".join(f'<text x="{x + PAD:.1f}" y="{y + PAD + (i + 0.8) * LINE_H:.1f}" {look}>{html.escape(line)}</text>'
                    for i, (line, look) in enumerate(zip(box.lines, looks)))
    return (f'<g class="node {box.kind}"><title>{html.escape(box.key)}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" rx="4" '
            f'fill="{FILL.get(box.kind, FILL["op"])}" stroke="#555"{dash}/>{texts}</g>')


def _edge(source, target, at: float, source_key: str, target_key: str, label: str, dashed: bool) -> str:
    sx, sy, sbox = source
    tx, ty, tbox = target
    x1, y1 = sx + sbox.width / 2, sy + sbox.height
    x2, y2 = tx + tbox.width * at, ty
    middle = (y1 + y2) / 2
    style = ' stroke-dasharray="3,3"' if dashed else ""
    text = (f'<text x="{x1 + 3:.1f}" y="{y1 + 10:.1f}" fill="#666" font-size="9">{html.escape(label)}</text>'
            if label else "")
    return (f'<g class="edge"><title>{html.escape(source_key)}-&gt;{html.escape(target_key)}</title>'
            f'<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{middle:.1f} {x2:.1f},{middle:.1f} {x2:.1f},{y2:.1f}" '
            f'fill="none" stroke="#555"{style} marker-end="url(#arrow)"/>{text}</g>')


# -- what the pictures show -------------------------------------------------------------------------------
_KINDS = {"Placeholder": "feed", "PlaceholderWithDefault": "feed", "Feed": "feed", "Const": "const",
          "ReadVariable": "variable", "Fused": "fused"}


def _describe(t: ir.TensorType) -> str:
    return f"{t.dtype.name}{ir.format_shape(t.shape)}"


def node_boxes(nodes) -> list[Box]:
    """A box per IR node (a graph's, an op's subgraph's or a compiled program's), edges labelled with the
    producer's output type; a fused node lists the nodes it covers."""
    by_name = {n.name: n for n in nodes}

    def label(tensor: str) -> str:
        producer, _, index = tensor.rpartition(":")
        node = by_name.get(producer)
        return _describe(node.outputs[int(index)]) if node is not None and int(index) < len(node.outputs) else ""

    boxes = []
    for node in nodes:
        lines = [node.name, f"{node.op}  {', '.join(_describe(t) for t in node.outputs)}".rstrip()]
        if node.device:
            lines.append(node.device)
        if node.op == "Fused":
            lines.append("fuses " + ", ".join(node.attrs.get("covers", ())))
        boxes.append(Box(node.name, lines, [(t.rpartition(":")[0], label(t)) for t in node.inputs],
                         _KINDS.get(node.op, "op"), list(node.control_inputs)))
    return boxes


def subgraph(nodes, names) -> list:
    """The nodes `names` depend on (data and control edges), themselves included, in graph order."""
    by_name = {n.name: n for n in nodes}
    wanted, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name in wanted or name not in by_name:
            continue
        wanted.add(name)
        node = by_name[name]
        stack.extend(t.rpartition(":")[0] for t in node.inputs)
        stack.extend(node.control_inputs)
    return [n for n in nodes if n.name in wanted]


def plan_boxes(plan) -> list[Box]:
    """A box per feed, step and fetch of a compiled plan (slots are reused: an edge goes from the step that
    last wrote a slot to the step that reads it); a fused step lists the nodes it covers, and its device."""
    boxes, writer = [], {}
    for feed in plan.feeds:
        boxes.append(Box(f"feed {feed.tensor}", [f"feed {feed.tensor}", f"${feed.slot} {_describe(feed.type)}"],
                         kind="feed"))
        writer[feed.slot] = (boxes[-1].key, _describe(feed.type))
    for index, step in enumerate(plan.steps):
        key = f"step {index}: {step.node}"
        lines = [step.node, f"{step.op}  " + ", ".join(_describe(t) for t in step.output_types)]
        if len(step.covers) > 1:
            lines.append("fuses " + ", ".join(step.covers))
        if step.device:
            lines.append(step.device)
        inputs = [writer[slot] for slot in step.inputs if slot in writer]
        boxes.append(Box(key, lines, inputs, "fused" if step.op == "Fused" else "op"))
        for slot, out in zip(step.outputs, step.output_types):
            writer[slot] = (key, _describe(out))
    for fetch in plan.fetches:
        boxes.append(Box(f"fetch {fetch.tensor}", [f"fetch {fetch.tensor}"],
                         [writer[fetch.slot]] if fetch.slot in writer else [], "fetch"))
    return boxes
