"""ONNX export: the whole network, input normalisation included, as standard opset-17 operators.

Input "input" is (N, C, H, W) float32 raw pixels in [0, 1] with a dynamic batch "N" (normalised
first by Sub mean, Mul 1 / std when the project has statistics); output
"probabilities" is (N, outputs). Initializers keep the engine's parameter names
(``conv1.weight``...), nodes are named after their blocks; each kind's module says how it maps
(``BlockKind.onnx``: conv -> Conv with explicit pads, pooling -> MaxPool/AveragePool, dense ->
Gemm...). A batchnorm right after a convolution or dense block with no activation of its own is
folded into it (``core.export.fold``): one Conv or Gemm node "conv1+batchnorm1" with its merged
initializers "conv1+batchnorm1.weight" and ".bias", then the batchnorm's activation. The project
JSON, class names and normalisation statistics are stored in ``metadata_props``.
"""
from __future__ import annotations

import json
import os

import numpy as np

from netbuilder.core.blocks import KINDS, LEAKY_RELU_SLOPE
from netbuilder.core.export.fold import fold_stages
from netbuilder.core.export.verify import (
    ExportError,
    Staging,
    class_names_of,
    compare,
    normalization_constants,
    normalization_of,
    not_checked,
    verification_samples,
)

OPSET = 17
IR_VERSION = 8  # what opset 17 shipped with: readable by onnxruntime >= 1.13 and older tools
INPUT, OUTPUT = "input", "probabilities"

_ACTIVATION_OPS = {"relu": "Relu", "leaky_relu": "LeakyRelu", "sigmoid": "Sigmoid", "tanh": "Tanh",
                   "identity": "Identity", "softmax": "Softmax"}


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ExportError("the ONNX export needs the onnx package; install it with: pip install onnx") from None
    return onnx


class _Graph:
    """Nodes and initializers appended in order; ``x`` is the name of the latest tensor."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes = []
        self.initializers = []
        self.x = INPUT

    def const(self, name: str, value) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str, node_name: str | None = None, **attrs) -> str:
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], name=node_name or out, **attrs))
        self.x = out
        return out

    def activation(self, node_name: str, act: str, out: str) -> None:
        attrs = {"alpha": LEAKY_RELU_SLOPE} if act == "leaky_relu" else {"axis": 1} if act == "softmax" else {}
        self.op(_ACTIVATION_OPS[act], [self.x], out, node_name, **attrs)


def build_onnx(network, class_names: list[str] | None = None):
    """The ``onnx.ModelProto`` of ``network`` (float32 weights), checked with full_check."""
    onnx = _onnx()
    helper = onnx.helper
    project = network.project
    g = _Graph(onnx)
    stats = normalization_of(project)
    if stats is not None:
        shift, scale = normalization_constants(project)
        c = len(shift)
        mean = g.const("normalization.mean", shift.reshape(1, c, 1, 1))
        inv_std = g.const("normalization.inv_std", scale.reshape(1, c, 1, 1))
        g.op("Sub", [g.x, mean], "centred", "normalize_mean")
        g.op("Mul", [g.x, inv_std], "normalized", "normalize_std")  # times 1 / std, as the app computes it

    lower_stages(g, network.stages)

    if g.nodes and g.x != INPUT:
        g.nodes[-1].output[0] = OUTPUT  # the last node writes the graph output directly
    else:
        g.op("Identity", [g.x], OUTPUT)
    c, h, w = (int(v) for v in project.input_shape)
    outputs = int(network.output_features)
    graph = helper.make_graph(
        g.nodes, _graph_name(project.name),
        [helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["N", outputs])], g.initializers)
    graph.doc_string = (f"{project.name}: input (N, {c}, {h}, {w}) raw pixels in [0, 1]"
                        + (", normalised inside the graph" if stats is not None else "")
                        + f"; output (N, {outputs}) class probabilities")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="netbuilder",
                              ir_version=IR_VERSION, doc_string=graph.doc_string)
    names = class_names if class_names is not None else class_names_of(project)
    meta = {"netbuilder.project": project.to_json(), "netbuilder.class_names": json.dumps(names),
            "netbuilder.class_to_index": json.dumps({name: i for i, name in enumerate(names)})}
    if stats is not None:
        meta["netbuilder.normalization"] = json.dumps({"mean": list(map(float, stats[0])),
                                                       "std": list(map(float, stats[1]))})
    helper.set_model_props(model, meta)
    try:
        # Every intermediate tensor gets its shape, so viewers such as Netron show them.
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types; any is our bug, shown as such
        raise ExportError(f"the ONNX graph built for {project.name!r} failed onnx's checker: {exc}") from None
    return model


def lower_stages(graph: _Graph, stages) -> None:
    """The nodes of ``stages`` in order, from ``graph.x`` on: each kind appends its own, with every
    batchnorm that can be folded into the block before it folded (groups lower their inner
    pipelines through here too)."""
    for stage in fold_stages(stages):
        KINDS[stage.info.kind].onnx(graph, stage)


def _graph_name(name: str) -> str:
    return name if name.strip() else "netbuilder"


def run_onnx(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Outputs of the ONNX file at ``path`` for ``x`` through onnxruntime (CPU, one thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # small verification batches; leave the cores to the app
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run([OUTPUT], {INPUT: np.ascontiguousarray(x, np.float32)})[0]


def export_onnx(network, path: str | os.PathLike, *, samples: np.ndarray | None = None,
                sample_source: str | None = None, class_names: list[str] | None = None):
    """Write ``network`` to the .onnx file ``path`` after running it in onnxruntime.

    ``samples`` (N, C, H, W) in [0, 1] are the verification inputs (default: random).
    Returns the ``VerificationReport``; raises ``ExportError`` (nothing written) if the model
    cannot be built or written, or if its outputs differ from the engine's.
    """
    if samples is None:
        samples, sample_source = verification_samples(network.project)
    model = build_onnx(network, class_names)
    with Staging("ONNX model") as staging:
        tmp = staging.temp(path)
        try:
            tmp.write_bytes(model.SerializeToString())
        except OSError as exc:
            raise ExportError(f"cannot write the ONNX model to {path}: {exc.strerror or exc}") from None
        try:
            import onnxruntime
        except ImportError:
            report = not_checked("onnx", staging.destinations, "onnxruntime", len(samples), sample_source or "",
                                 "install it with: pip install onnxruntime")
        else:
            report = compare("onnx", network, samples, lambda x: run_onnx(tmp, x),
                             f"onnxruntime {onnxruntime.__version__}", staging.destinations, sample_source or "")
        if report.checked and not report.passed:
            raise ExportError(f"the ONNX export of {network.project.name!r} gives other answers than the app; "
                              f"nothing was written\n{report}", report)
        staging.publish()
    return report
