"""The PyTorch export and the torch bridge pad with the layers' own ``padding=`` wherever the padding is
symmetric (a readable module and torch's fast path) and pad separately only where it is not, with the
engine's results either way."""
from __future__ import annotations

import numpy as np
import torch

from netbuilder.core.export.torch_export import module_source
from netbuilder.core.export.verify import engine_outputs
from netbuilder.core.network import Network
from netbuilder.core.torch_bridge import torch_model
from tests.core.test_export_onnx import _conv, _pool, case_project, inputs

torch.set_num_threads(1)


def _torch_outputs(network, x):
    with torch.no_grad():
        return torch_model(network)(torch.from_numpy(x)).numpy()


def test_symmetric_same_padding_is_the_layers_own_and_matches_the_engine():
    # 'same' at stride 1 with odd kernels and a max/average pool padded by half its window: all symmetric
    project = case_project([_conv(padding="same"), _conv(kernel_size=5, padding="same", filters=4),
                            _pool("max", size=3, stride=1, padding=1), _pool("average", size=3, stride=1, padding=1),
                            _conv(kernel_size=[3, 5], padding="same")], input_shape=(2, 9, 8))
    network = Network(project)
    source = module_source(network)
    assert "F.pad" not in source and "ConstantPad" not in source
    assert "nn.Conv2d(2, 3, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in source
    assert "nn.Conv2d(3, 4, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))" in source
    assert "nn.Conv2d(4, 3, kernel_size=(3, 5), stride=(1, 1), padding=(1, 2))" in source
    assert "nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in source
    model = torch_model(network)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.padding for m in convs] == [(1, 1), (2, 2), (1, 2)]
    x = inputs(project, 5)
    np.testing.assert_allclose(_torch_outputs(network, x), engine_outputs(network, x), rtol=1e-5, atol=1e-6)


def test_asymmetric_padding_alone_is_padded_first_and_matches_the_engine():
    # an even kernel at stride 1 and a 3x3 at stride 2 take the odd pixel on the bottom/right only
    project = case_project([_conv(kernel_size=2, padding="same"), _conv(padding="same", stride=2),
                            _pool("max", size=2, stride=1, padding="same")], input_shape=(2, 8, 8))
    network = Network(project)
    source = module_source(network)
    assert source.count("x = F.pad(x, (0, 1, 0, 1))") == 2  # the two convolutions
    assert 'x = F.pad(x, (0, 1, 0, 1), value=float("-inf"))' in source  # max pooling: padding never wins
    assert "ConstantPad" not in source and "padding=(" not in source
    x = inputs(project, 5)
    np.testing.assert_allclose(_torch_outputs(network, x), engine_outputs(network, x), rtol=1e-5, atol=1e-6)
