"""The per-frame graphs (E_m features → folded M → G) export without graph breaks; ONNX Runtime matches eager."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from engine.runtime.runtimes import export_onnx
from engine.stylegan.folding import FoldedMapping
from models.paper import PaperConfig, PaperModel


class PerFrame(nn.Module):
    """driving [1, 3, S, S], identity constant [1, n·D] → image: the whole per-frame path as one graph."""

    def __init__(self, model: PaperModel) -> None:
        super().__init__()
        g = model.decoder.config
        self.encoder, self.decoder = model.encoder, model.decoder
        self.mapping = FoldedMapping(model.encoder.linear, model.mapping_net.linear, g.n_latent, g.style_dim)

    def forward(self, x: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.mapping(self.encoder.features(x), constant))


def per_frame():
    torch.manual_seed(0)
    config = PaperConfig.tiny()
    model = PaperModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    graph = PerFrame(model).eval()
    g = config.generator
    x = torch.rand(1, 3, config.input_size, config.input_size) * 2 - 1
    constant = graph.mapping.identity_constant(torch.randn(1, g.n_latent, g.style_dim))
    return graph, (x, constant)


def test_torch_export_strict_has_no_graph_breaks():
    graph, inputs = per_frame()
    exported = torch.export.export(graph, inputs, strict=True)
    with torch.no_grad():
        assert torch.allclose(exported.module()(*inputs), graph(*inputs), atol=1e-5)


def test_onnx_runtime_matches_eager(tmp_path):
    graph, inputs = per_frame()
    path = export_onnx(graph, inputs, tmp_path / "per_frame.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input_0": inputs[0].numpy(), "input_1": inputs[1].numpy()})
    with torch.no_grad():
        expected = graph(*inputs).numpy()
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1e-4
