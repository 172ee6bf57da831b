"""The rebuilt layers against PyTorch's own convolutions, and `rebuild`'s choice of graph."""

from __future__ import annotations

import io

import pytest
import torch
from torch import Tensor, nn

from service.runtime import layers
from service.runtime.model import load_model
from service.settings import DEFAULT_MODEL_PATH
from training.export import quiet_torchscript


def scripted(module: nn.Module) -> torch.jit.ScriptModule:
    """`module` as a TorchScript file would give it back: saved and loaded."""
    buffer = io.BytesIO()
    with quiet_torchscript():
        torch.jit.save(torch.jit.script(module.eval()), buffer)
        buffer.seek(0)
        loaded: torch.jit.ScriptModule = torch.jit.load(buffer)  # type: ignore[no-untyped-call]
    return loaded


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "output_padding", "side"),
    [
        (3, 2, 1, 1, 7),
        (3, 2, 1, 1, 14),
        (4, 2, 1, 0, 5),
        (3, 1, 1, 0, 6),
        ((2, 3), (3, 2), 0, 1, 4),
    ],
)
def test_folded_transposed_convolution_is_pytorchs(
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int],
    padding: int,
    output_padding: int,
    side: int,
) -> None:
    torch.manual_seed(0)
    conv = nn.ConvTranspose2d(5, 3, kernel, stride, padding, output_padding).eval()
    x = torch.randn(4, 5, side, side)  # (N, C, H, W)
    with torch.inference_mode():
        want = conv(x)
        rebuilt, shape = layers._convolution(scripted(conv), True, (5, side, side))
        got = rebuilt(x)
    assert isinstance(rebuilt, layers.FoldedConvTranspose)
    assert tuple(got.shape[1:]) == shape == tuple(want.shape[1:])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("transposed", [False, True])
def test_a_convolution_over_one_pixel_is_a_dense_layer(transposed: bool) -> None:
    torch.manual_seed(1)
    if transposed:  # (N, 6, 1, 1) -> (N, 4, 5, 5)
        conv: nn.Module = nn.ConvTranspose2d(6, 4, 5)
        x, item = torch.randn(3, 6, 1, 1), (6, 1, 1)
    else:  # (N, 4, 5, 5) -> (N, 6, 1, 1)
        conv, x, item = nn.Conv2d(4, 6, 5), torch.randn(3, 4, 5, 5), (4, 5, 5)
    with torch.inference_mode():
        want = conv.eval()(x)
        rebuilt, shape = layers._convolution(scripted(conv), transposed, item)
        got = rebuilt(x)
    assert isinstance(rebuilt, layers.Dense)
    assert tuple(got.shape[1:]) == shape == tuple(want.shape[1:])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_committed_model_is_served_on_rebuilt_layers_with_its_answers() -> None:
    model = load_model(DEFAULT_MODEL_PATH, torch.device("cpu"))
    assert model.rebuilt_layers
    rebuilt = layers.rebuild(model.module, (1, 28, 28), model.embedding_dim)
    assert rebuilt.original_name == "Rebuilt"
    x = torch.rand(40, 1, 28, 28)  # past the batch sizes `rebuild` checks
    with torch.inference_mode():
        z = model.module.encode(x)  # (40, D)
        torch.testing.assert_close(rebuilt.encode(x), z, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rebuilt.decode(z), model.module.decode(z), rtol=0, atol=1e-5)
        torch.testing.assert_close(rebuilt(x), model.module(x), rtol=0, atol=1e-5)


class _Encoder(nn.Module):
    def __init__(self, last: nn.Module) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), last, nn.Conv2d(4, 8, 4))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)  # (N, 1, 8, 8) -> (N, 8)


class _Decoder(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(8, 4, 4), nn.ReLU(), nn.ConvTranspose2d(4, 1, 2, 2)
        )
        self.scale = scale

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None]) * self.scale  # (N, 8) -> (N, 1, 8, 8)


class _Autoencoder(nn.Module):
    def __init__(self, last: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.encoder = _Encoder(last)
        self.decoder = _Decoder(scale)

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def test_a_model_of_this_layout_is_rebuilt() -> None:
    rebuilt = layers.rebuild(scripted(_Autoencoder(nn.ReLU())), (1, 8, 8), 8)
    assert rebuilt.original_name == "Rebuilt"


@pytest.mark.parametrize(
    "model",
    [
        _Autoencoder(nn.Tanh()),  # a layer with no rebuild
        _Autoencoder(nn.ReLU(), scale=0.5),  # decode does more than its layers
    ],
    ids=["unknown-layer", "other-forward"],
)
def test_any_other_model_is_served_on_its_own_graph(model: nn.Module) -> None:
    module = scripted(model)
    assert layers.rebuild(module, (1, 8, 8), 8) is module
