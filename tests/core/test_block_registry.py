"""Every block kind in the registry implements every part: schema, shape rule, engine layers, the three
lowerings, palette entry, icon and colour; and round-trips through every export, verified. A kind that
forgets a part fails here."""
from __future__ import annotations

import re

import numpy as np
import pytest

from netbuilder.core.blocks import KINDS, BlockKind, default_block, with_defaults
from netbuilder.core.export import export
from netbuilder.core.inference import infer
from netbuilder.core.network import Network
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.resources import resource_path
from netbuilder.core.summary import short_settings
from netbuilder.core.trainer import Trainer
from tests.core.test_trainer import blobs

KIND_NAMES = list(KINDS)


def project_with(kind: str) -> Project:
    """A small valid network holding one ``kind`` block, on images or, if it needs them, flat values."""
    head = [{"kind": "dense", "units": 3, "activation": "softmax"}]
    for before in ([], [{"kind": "flatten"}, {"kind": "dense", "units": 5, "activation": "relu"}]):
        blocks = before + [default_block(kind)] + ([] if before else [{"kind": "flatten"}]) + head
        project = Project(name=kind, input_shape=(2, 6, 6), num_classes=3, blocks=blocks,
                          training=TrainingSettings(batch_size=8, seed=1))
        if infer(project).ok:
            return project
    raise AssertionError(f"no small valid network holds a default {kind} block: {infer(project).errors}")


def test_kinds_are_found_and_ordered():
    assert {"conv", "pool", "dense", "flatten", "activation", "dropout", "batchnorm"} <= set(KIND_NAMES)
    assert all(isinstance(spec, BlockKind) and spec.kind == name for name, spec in KINDS.items())
    positions = [spec.position for spec in KINDS.values()]
    assert positions == sorted(positions)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_kind_declares_its_schema_palette_icon_and_colour(kind):
    spec = KINDS[kind]
    assert spec.label and spec.help and not spec.help.endswith(".")
    assert len({f.name for f in spec.fields}) == len(spec.fields)
    for f in spec.fields:
        assert f.help and f.type in ("int", "pair", "padding", "choice", "float", "optional_pair", "bool")
    block = default_block(kind)
    structure = {key: block[key] for key in spec.structure}  # a group's inner blocks are not field defaults
    assert with_defaults({"kind": kind, **structure}) == block
    assert not short_settings(block).startswith(("unknown kind", "not a block"))  # its own one-line description
    assert spec.palette and all(e.kind == kind and e.label and e.subtitle and e.help.endswith(".")
                                for e in spec.palette)
    assert re.fullmatch(r"#[0-9a-f]{6}", spec.accent)
    for entry in spec.palette:
        stem = spec.icon({**block, **dict(entry.preset)})
        assert resource_path("icons", f"{stem}.svg").is_file(), f"{kind}: no icon {stem}.svg"
    for alias in spec.aliases:  # a name from another library, never another kind's own
        assert alias not in KINDS or alias == kind


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_kind_shapes_builds_and_lowers(kind):
    project = project_with(kind)
    result = infer(project)
    info = next(b for b in result.blocks if b.kind == kind)
    assert info.output_shape is not None and info.params >= 0 and info.macs >= 0
    spec = KINDS[kind]
    net = Network(project)
    stage = next(s for s in net.stages if s.info.kind == kind)
    assert stage.layers, f"{kind}: no engine layers"
    # every parameter and buffer the shape rule counts is in a named layer, under the block's path
    assert sum(p.size for _, layer in stage.named for p in layer.params.values()) == info.params
    assert sum(v.size for _, layer in stage.named for k, v in layer.buffers.items()
               if k != "num_batches_tracked") == info.buffers
    assert all(prefix == stage.path or prefix.startswith(stage.path + ".") for prefix, _ in stage.named)
    module, lines = spec.torch(stage)
    classes = spec.torch_classes(stage)  # a group's own nn.Module classes, which its module expression names
    assert module is None or module.startswith("nn.") or any(f"class {module[:-2]}(nn.Module)" in c for c in classes)
    assert all(isinstance(line, str) for line in lines)
    spec_dict = spec.numpy(stage)
    if spec_dict is not None:
        assert f"def step_{kind}(x, layer, weights)" in spec.numpy_step


@pytest.mark.parametrize("fmt", ["numpy", "onnx", "torch"])
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_kind_round_trips_through_every_export(tmp_path, kind, fmt):
    project = project_with(kind)
    trainer = Trainer(project, blobs(n=32, shape=(2, 6, 6)))
    trainer.fit(epochs=1)  # trained weights (and moved running statistics), not the initial ones
    samples = np.random.default_rng(0).random((8, 2, 6, 6), dtype=np.float32)
    report = export(trainer.network, tmp_path / ("net.onnx" if fmt == "onnx" else "net"), fmt, samples=samples)
    assert report.checked and report.passed, report
