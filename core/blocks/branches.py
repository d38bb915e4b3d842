"""Branches group: several pipelines run on the same input and are merged (Inception's modules).

``{"kind": "branches", "paths": [[...], [...]], "merge": "concat"}``: ``concat`` joins the paths'
outputs along the channels (their heights and widths must agree), ``add`` sums them (their shapes
must agree). An empty path passes the input through. The gradient splits along the paths and is
summed at the input.
"""
from __future__ import annotations

import copy

from netbuilder.core.blocks.base import BlockKind, Field, PaletteEntry, Shaped
from netbuilder.core.blocks.group import (
    build_stages,
    chain_text,
    class_name_of,
    inner_bytes,
    lower_onnx,
    named_of,
    numpy_specs,
    shape_text,
    torch_class,
)

MERGES = ("concat", "add")
_PATHS = [[{"kind": "conv", "filters": 8, "kernel_size": 1, "activation": "relu"}],
          [{"kind": "conv", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"}],
          [{"kind": "pool", "mode": "max", "size": 3, "stride": 1, "padding": 1}]]


class Branches(BlockKind):
    kind = "branches"
    position = 95
    label = "Branches"
    help = "runs several pipelines on the same input and joins their outputs (concat along channels, or add)"
    fields = (Field("merge", "choice", "concat", "how the paths' outputs are joined: 'concat' stacks their "
                                                 "channels, 'add' sums them", choices=MERGES),)
    structure = ("paths",)
    side_by_side = True
    palette = (PaletteEntry("branches", "Branches", "parallel paths, merged",
                            "Runs several pipelines on the same input and joins their outputs, as Inception's "
                            "modules do."),)
    accent = "#7a6a2f"  # bronze
    shows_maps = True  # the merged maps
    aliases = ("inception", "parallel", "concat")

    def default(self) -> dict:
        return {"kind": "branches", "paths": copy.deepcopy(_PATHS), "merge": "concat"}

    def describe(self, b: dict) -> str:
        n = len(b["paths"]) if isinstance(b.get("paths"), list) else 0
        return f"branches · {n} path{'s' if n != 1 else ''} · {b['merge']}"

    def shape(self, ctx) -> Shaped:
        paths = ctx.block.get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, list) for p in paths):
            ctx.problem(f"paths must be a list of pipelines (lists of blocks), e.g. [[...], [...]], "
                        f"got {paths!r}"[:200], "paths")
            return Shaped(None)
        results = [ctx.nested(path, ctx.input_shape, f"block {ctx.index + 1} › path {k + 1} › ", ctx.index, k)
                   for k, path in enumerate(paths)]
        outs = [out for _, out in results]
        children = tuple(tuple(p) for p, _ in results)
        if any(out is None for out in outs):
            return Shaped(None, children=children)
        merge = ctx.values["merge"]
        first = outs[0]
        for k, out in enumerate(outs[1:], start=2):
            if merge == "add" and out != first:
                ctx.problem(f"'add' needs paths of one shape, but path 1 gives {shape_text(first)} and path {k} "
                            f"{shape_text(out)}", "merge")
                return Shaped(None, children=children)
            if merge == "concat" and (len(out) != len(first) or out[1:] != first[1:]):
                what = "heights and widths" if len(first) == 3 else "kinds of output"
                ctx.problem(f"'concat' joins channels, so the paths' {what} must agree, but path 1 gives "
                            f"{shape_text(first)} and path {k} {shape_text(out)}", "merge")
                return Shaped(None, children=children)
        output = first if merge == "add" else (sum(out[0] for out in outs), *first[1:])
        infos = [info for path_infos, _ in results for info in path_infos]
        return Shaped(tuple(output), sum(i.params for i in infos), sum(i.macs for i in infos),
                      sum(i.buffers for i in infos), children=children,
                      inner_bytes=inner_bytes(infos))

    def group_lines(self, info):
        lines = [f"path {k}: {chain_text(path)}" for k, path in enumerate(info.children, start=1)]
        how = "channels stacked" if info.block["merge"] == "concat" else "summed"
        return lines + [f"out = the paths' outputs {how} = {shape_text(info.output_shape)}"]

    def layers(self, info, rng, dtype, path):
        from netbuilder.core.layers.groups import Branches as BranchesLayer

        paths = [build_stages(infos, rng, dtype, f"{path}.path{k + 1}") for k, infos in enumerate(info.children)]
        layer = BranchesLayer([[x for st in stages for x in st.layers] for stages in paths], info.block["merge"])
        layer.paths_stages = paths
        return [layer], None

    def named_layers(self, path, layers):
        return [pair for stages in layers[0].paths_stages for pair in named_of(stages)]

    def unwrap(self, block: dict) -> list | None:
        """The one path that holds blocks; branches of several such paths stay a group."""
        paths = block.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, list) for p in paths):
            return None
        full = [p for p in paths if p]
        return full[0] if len(full) == 1 else None

    wrap_label = "Wrap in &branches, one path per block"

    def join_text(self, info) -> tuple[str, str]:
        merge = info.block.get("merge", "concat")
        how = "concat: channels stacked" if merge == "concat" else "add: the paths summed"
        result = f" → {shape_text(info.output_shape)}" if info.output_shape is not None else ""
        return ("≡" if merge == "concat" else "+"), how + result

    def wrap(self, blocks: list[dict]) -> dict | None:
        return {**self.default(), "paths": [[copy.deepcopy(b)] for b in blocks]}

    def lanes(self, block: dict) -> list[list] | None:
        paths = block.get("paths")
        return paths if isinstance(paths, list) and all(isinstance(p, list) for p in paths) else None

    def lane_infos(self, info) -> list[tuple]:
        return list(info.children)

    def inner_stages(self, stage) -> list:
        return [s for stages in stage.layers[0].paths_stages for s in stages]

    def onnx(self, graph, stage):
        name, start, outs = stage.path, graph.x, []
        for stages in stage.layers[0].paths_stages:
            graph.x = start
            lower_onnx(graph, stages)
            outs.append(graph.x)
        if stage.info.block["merge"] == "concat":
            graph.op("Concat", outs, name + "_out", name, axis=1)
        else:
            graph.op("Sum", outs, name + "_out", name)

    def torch(self, stage, final_activation=True):
        return f"{class_name_of(self.kind, stage.path)}()", ["x = {m}(x)"]

    def torch_classes(self, stage):
        classes, init, merged = [], [], []
        for k, stages in enumerate(stage.layers[0].paths_stages, start=1):
            name = class_name_of("path", f"{stage.path}.path{k}")
            classes += torch_class(stages, name, ["{body}", "return x"])
            init.append(f"self.path{k} = {name}()")
            merged.append(f"self.path{k}(x)")
        join = "torch.cat([{}], dim=1)" if stage.info.block["merge"] == "concat" else "sum([{}])"
        forward = [f"return {join.format(', '.join(merged))}"]
        lines = [*classes, f"class {class_name_of(self.kind, stage.path)}(nn.Module):", "    def __init__(self):",
                 "        super().__init__()", *[f"        {line}" for line in init], "",
                 "    def forward(self, x):", *[f"        {line}" for line in forward]]
        return ["\n".join(lines)]

    def numpy(self, stage):
        return {"paths": [numpy_specs(stages) for stages in stage.layers[0].paths_stages],
                "merge": stage.info.block["merge"]}

    numpy_step = '''
def step_branches(x, layer, weights):
    """Every path on the same input, joined along the channels (concat) or summed (add)."""
    outs = [run(path, x, weights) for path in layer["paths"]]
    return np.concatenate(outs, axis=1) if layer["merge"] == "concat" else sum(outs[1:], outs[0])
'''
