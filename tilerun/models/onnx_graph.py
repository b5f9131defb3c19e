"""What an ONNX file itself says about its geometry, read from the graph, not assumed.

* the input's channels, and whether its batch, height and width are fixed (a number in the
  graph) or dynamic (a name or nothing): a fixed size is the only tile it runs, a fixed batch
  the only batch it takes;
* its outputs (names and shapes), for models with several (the spec's ``output`` chooses);
* the opset, and the *downsampling factor*: what tile sizes and strides must be multiples of so
  every tile sees the same pooling grid. It is tilerun's ``tilerun.downsampling`` metadata where
  the file has it, else traced through the graph: each tensor's stride relative to the input
  is its inputs' largest, times the stride of a strided ``Conv``/``MaxPool``/``AveragePool``,
  divided by a ``ConvTranspose``'s stride or a ``Resize``'s scale (an ``Resize`` whose scale is
  computed at run time is taken as 2×, the U-Net decoder's); the factor is the largest stride
  any tensor reaches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tilerun.errors import ModelError

DOWNSAMPLING_KEY = "tilerun.downsampling"
_STRIDED = ("Conv", "MaxPool", "AveragePool", "LpPool", "ConvInteger", "QLinearConv")


@dataclass(frozen=True)
class OnnxTensor:
    """A graph input or output: its name and dimensions (an int when fixed, else the name
    the graph gives the dimension, or ``"?"``)."""

    name: str
    shape: tuple[int | str, ...]

    def fixed(self, axis: int) -> int | None:
        """The dimension ``axis`` when the graph fixes it, else None."""
        if axis >= len(self.shape):
            return None
        value = self.shape[axis]
        return value if isinstance(value, int) else None


@dataclass(frozen=True)
class OnnxGeometry:
    """The input, outputs, opset and downsampling factor of an ONNX model (see module doc)."""

    input: OnnxTensor
    outputs: tuple[OnnxTensor, ...]
    opset: int | None
    downsampling: int
    #: where ``downsampling`` came from: ``metadata`` or ``graph``
    downsampling_from: str
    metadata: dict[str, str]

    @property
    def channels(self) -> int | None:
        return self.input.fixed(1)

    @property
    def fixed_batch(self) -> int | None:
        return self.input.fixed(0)

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """``(height, width)`` when both are fixed, else None."""
        height, width = self.input.fixed(2), self.input.fixed(3)
        return (height, width) if height is not None and width is not None else None


def read_geometry(path: str | Path) -> OnnxGeometry:
    """The geometry of the ONNX model at ``path`` (weights are not read)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others of its own
        raise ModelError(path, f"is not an ONNX model tilerun can read ({err})") from err
    graph = model.graph
    initialisers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise ModelError(path, f"has {len(inputs)} inputs; tilerun feeds models one image "
                         "tensor (N, bands, H, W)")
    first = _tensor(inputs[0])
    if len(first.shape) != 4:
        raise ModelError(path, f"input {first.name!r} has shape {first.shape}; tilerun feeds "
                         "(N, bands, H, W)")
    metadata = {p.key: p.value for p in model.metadata_props}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    declared = metadata.get(DOWNSAMPLING_KEY)
    if declared is not None:
        factor, source = _declared(declared, path), "metadata"
    else:
        factor, source = _traced_downsampling(graph, first.name), "graph"
    return OnnxGeometry(first, tuple(_tensor(o) for o in graph.output), opset, factor, source,
                        metadata)


def _tensor(value: Any) -> OnnxTensor:
    dims: list[int | str] = []
    for dim in value.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or "?")
    return OnnxTensor(value.name, tuple(dims))


def _declared(text: str, path: str | Path) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ModelError(path, f"{DOWNSAMPLING_KEY} metadata must be an integer ≥ 1, got {text!r}")
    return value


def _traced_downsampling(graph: Any, input_name: str) -> int:
    """The largest stride any tensor reaches relative to the input (see the module doc)."""
    from onnx import numpy_helper

    wanted = {node.input[2 if node.op_type == "Resize" else 1] for node in graph.node
              if node.op_type in ("Resize", "Upsample") and len(node.input) > 1
              and len(node.input) > (2 if node.op_type == "Resize" else 1)}
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name in wanted}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.output[0] in wanted:
            try:
                constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            except (ValueError, TypeError, AttributeError):
                continue
    stride: dict[str, float] = {input_name: 1.0}
    deepest = 1.0
    for node in graph.node:
        known = [stride[name] for name in node.input if name in stride]
        if not known:
            continue
        value = max(known) * _node_factor(node, constants)
        deepest = max(deepest, value)
        for name in node.output:
            stride[name] = value
    return max(1, round(deepest))


def _node_factor(node: Any, constants: dict[str, Any]) -> float:
    """What ``node`` multiplies its input's stride by."""
    strides = next((list(a.ints) for a in node.attribute if a.name == "strides"), None)
    if node.op_type in _STRIDED:
        return float(max(strides)) if strides else 1.0
    if node.op_type == "ConvTranspose":
        return 1.0 / float(max(strides)) if strides else 1.0
    if node.op_type in ("Resize", "Upsample"):
        index = 2 if node.op_type == "Resize" else 1
        scales = constants.get(node.input[index]) if len(node.input) > index else None
        if scales is not None and getattr(scales, "size", 0) >= 2 and float(scales[-1]) > 0:
            return 1.0 / float(scales[-1])
        return 0.5
    return 1.0
