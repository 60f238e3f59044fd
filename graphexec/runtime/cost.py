"""What a plan costs on a CPU and on a GPU, so that small runs stay on the CPU when a GPU is live.

A run placed on a GPU pays for every step it launches and for moving its feeds and fetches across the
bus; a CPU pays for the arithmetic only. The estimate is static: FLOPs from the plan's matrix products
and convolutions (2 per multiply-add), one per output element for every other step, and the bytes of
feeds and fetches. Shapes unknown at compile time (a `[None, 784]` placeholder) make each figure
linear in the run's rows, `fixed + per_row * rows`, where rows is the size of the fed unknown dimension,
read at run time. The rates are rough, measured ones (bench/README.md, GPU section: a 784-256-10 MLP
trained at batch 128 ran 0.78x as fast on an H100 as on 16 CPU cores; 2048^2 products 6.6x faster; on an
H200 each of bench.gpu's four runs went to the faster of the two devices), and
only their ratios matter: the decision flips within a factor of a few of the true break-even point,
where the two devices are about equally fast anyway.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from graphexec.compiler.plan import Plan

CPU_FLOPS = 1e11  # per second: a worker's BLAS on a few cores
GPU_FLOPS = 2e13  # per second, float32, well below a data-centre GPU's peak
GPU_LAUNCH_S = 1e-4  # per plan step: the executor's Python and CuPy's launches (784-256-10 MLP: 22 steps, ~2.6 ms)
BUS_BYTES_PER_S = 1e10  # host <-> device copies: feeds from pageable memory (H200: ~7 GB/s), fetches of 1 MiB+ page-locked (~50)
_MATMULS = {"MatMul", "_FusedMatMul", "_MatMulApplyGradientDescent"}
_PRODUCTS = {"Conv2D", "_FusedConv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"} | _MATMULS
# Which inputs of a product are its two arrays (default 0 and 1): a backprop's other input, input_sizes or
# filter_sizes, is a 1-D shape vector; a fused update's first is its learning rate.
_ARRAY_INPUTS = {"Conv2DBackpropInput": (1, 2), "Conv2DBackpropFilter": (0, 2), "_MatMulApplyGradientDescent": (1, 2)}


@dataclass(frozen=True)
class Linear:
    """fixed + per_row * rows."""

    fixed: float = 0.0
    per_row: float = 0.0

    def __add__(self, other: Linear) -> Linear:
        return Linear(self.fixed + other.fixed, self.per_row + other.per_row)

    def scaled(self, factor: float) -> Linear:
        return Linear(self.fixed * factor, self.per_row * factor)

    def times(self, other: Linear) -> Linear:
        """The product, with rows * rows taken as rows (two unknown dimensions are rarely both the batch)."""
        return Linear(self.fixed * other.fixed,
                      self.fixed * other.per_row + self.per_row * other.fixed + self.per_row * other.per_row)

    def at(self, rows: int) -> float:
        return self.fixed + self.per_row * rows


@dataclass(frozen=True)
class Work:
    flops: Linear
    transfer_bytes: Linear
    steps: int

    def cpu_seconds(self, rows: int) -> float:
        return self.flops.at(rows) / CPU_FLOPS

    def gpu_seconds(self, rows: int) -> float:
        copies = self.transfer_bytes.at(rows) / BUS_BYTES_PER_S
        return self.steps * GPU_LAUNCH_S + copies + self.flops.at(rows) / GPU_FLOPS

    def gpu_pays(self, rows: int) -> bool:
        return self.gpu_seconds(rows) < self.cpu_seconds(rows)


def elements(shape) -> Linear:
    """A shape's element count; its unknown dimensions count as the run's rows (the first) and 1 (others)."""
    known = math.prod(d for d in shape if d is not None and d >= 0)
    return Linear(0.0, float(known)) if any(d is None or d < 0 for d in shape) else Linear(float(known))


def estimate(plan: Plan) -> Work:
    shapes = {e.slot: e.type.shape for e in plan.feeds}
    shapes.update((slot, getattr(value, "shape", ())) for slot, value in plan.constants.items())
    flops, steps = Linear(), 0
    for step in plan.steps:
        flops += _step_flops(step, [shapes.get(slot) for slot in step.inputs])
        steps += 1 + sum(len(v.steps) for v in step.attrs.values() if isinstance(v, Plan))
        shapes.update((slot, t.shape) for slot, t in zip(step.outputs, step.output_types))
    moved = Linear()
    for endpoint in (*plan.feeds, *plan.fetches):
        moved += elements(endpoint.type.shape).scaled(endpoint.type.dtype.size)  # a string: its pointer
    return Work(flops, moved, steps)


def rows_of(plan: Plan, feeds) -> int:
    """The run's rows: the largest fed size of a feed dimension its plan leaves unknown (1 if none)."""
    rows = 1
    for endpoint, value in zip(plan.feeds, feeds):
        for declared, actual in zip(endpoint.type.shape, getattr(value, "shape", ())):
            if declared is None or declared < 0:
                rows = max(rows, actual)
                break
    return rows


def _step_flops(step, inputs: list) -> Linear:
    """`inputs`: the shapes of the step's inputs (None where unknown)."""
    out = step.output_types[0].shape if step.output_types else None
    arrays = [inputs[i] for i in _ARRAY_INPUTS.get(step.op, (0, 1)) if i < len(inputs)]
    if step.op in _PRODUCTS and out is not None and len(arrays) == 2 and all(len(s or ()) >= 2 for s in arrays):
        if step.op in _MATMULS:
            a = arrays[0]
            inner = a[-2] if step.attrs.get("transpose_a") else a[-1]
            return elements(out).times(elements((inner,))).scaled(2.0)
        kernel = out if step.op == "Conv2DBackpropFilter" else inputs[1]  # [height, width, in, out]
        produced = inputs[2] if step.op in _ARRAY_INPUTS else out  # the forward convolution's output, either way
        if len(kernel) == 4:
            return elements(produced).times(elements(kernel[:3])).scaled(2.0)
    total = Linear()
    for output in step.output_types:
        total += elements(output.shape)
    return total
