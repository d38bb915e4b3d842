"""What the group kinds (residual, branches) share: reading their inner pipelines, building their
inner stages, and lowering those stages with each inner block's own kind."""
from __future__ import annotations


def check_pipeline_field(ctx, key: str, allow_empty: bool) -> list | None:
    """``ctx.block[key]`` when it is a list of blocks (non-empty unless ``allow_empty``), else None
    after saying what it must be."""
    value = ctx.block.get(key)
    if not isinstance(value, list) or (not value and not allow_empty):
        ctx.problem(f"{key} must be a list of blocks, e.g. [{{\"kind\": \"conv\", ...}}], got {value!r}"[:200], key)
        return None
    return value


def inner_bytes(infos) -> int:
    return sum(i.activation_bytes for i in infos)


def build_stages(infos, rng, dtype, path: str) -> list:
    """The stages of a group's inner blocks, named under the group's ``path``."""
    from netbuilder.core.network import build_stage

    return [build_stage(info, rng, dtype, path) for info in infos]


def named_of(stages) -> list:
    return [pair for stage in stages for pair in stage.named]


def lower_onnx(graph, stages) -> None:
    """Each inner block's ONNX nodes, in order, from ``graph.x`` on (as the top level's)."""
    from netbuilder.core.export.onnx_export import lower_stages

    lower_stages(graph, stages)


def numpy_specs(stages) -> list[dict]:
    """predict.py's entries of inner blocks (see ``core.export.numpy_export.layer_specs``)."""
    from netbuilder.core.export.numpy_export import stage_specs

    return stage_specs(stages)


def torch_class(stages, class_name: str, forward: list[str], extra_init: list[str] = ()) -> list[str]:
    """The source of an ``nn.Module`` subclass holding the inner blocks' modules (and any nested
    group's classes, first), whose forward is ``forward`` with ``{body}`` standing for the inner
    blocks' lines."""
    from netbuilder.core.export.torch_export import stage_lines

    init, body, classes = stage_lines(stages)
    lines = [*classes, f"class {class_name}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    lines += [f"        {line}" for line in [*init, *extra_init]] or ["        pass"]
    lines += ["", "    def forward(self, x):"]
    for line in forward:
        if line == "{body}":
            lines += [f"        {b}" for b in body]
        else:
            lines.append(f"        {line}")
    return ["\n".join(lines)]


def class_name_of(kind: str, path: str) -> str:
    """A Python class name for a group at ``path`` ("res1.inner" -> "Residual_res1_inner")."""
    return f"{kind.capitalize()}_{path.replace('.', '_')}"


def shape_text(shape) -> str:
    return " x ".join(map(str, shape)) if shape is not None else "?"


def chain_text(infos) -> str:
    """"conv1 → 16 x 28 x 28 → batchnorm1 → 16 x 28 x 28" for a pipeline's infos."""
    return " → ".join(f"{i.name} {shape_text(i.output_shape)}" for i in infos) or "the input itself"
