"""The model's methods with the service's pre- and post-processing, as one TorchScript call each.

The inference thread hands the GIL back to the event loop for every torch operation it calls
from Python, and under load each hand-back waits for the busy loop to let go again: a forward
pass followed by an MSE, a rounding and two copies to the host costs ten waits a batch. Scripted
together, a batch costs one.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn


class Serving(nn.Module):
    """Wraps a loaded autoencoder; every method takes and returns batches on the host."""

    def __init__(self, model: torch.jit.ScriptModule, device: torch.device) -> None:
        super().__init__()
        self.model = model
        self.device = device

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        z: Tensor = self.model.encode(x.to(self.device)[:, None])  # (N, 28, 28) -> (N, D)
        return z.cpu()

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        y = self.model.decode(z.to(self.device))[:, 0]  # (N, D) -> (N, 28, 28)
        return _to_uint8(y).cpu()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 28, 28) -> the reconstructions (N, 28, 28) uint8 and each one's MSE (N,)."""
        x = x.to(self.device)
        y = self.model(x[:, None])[:, 0]  # (N, 28, 28)
        mse = (y - x).square().mean(dim=(1, 2))  # (N,)
        return _to_uint8(y).cpu(), mse.cpu()


def _to_uint8(y: Tensor) -> Tensor:
    """[0, 1] -> 0..255, rounding half to even (as numpy's rint does)."""
    return (y.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def script(model: torch.jit.ScriptModule, device: torch.device) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # TorchScript is deprecated in this torch; the file format is our contract for now.
        warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", FutureWarning)
        scripted: torch.jit.ScriptModule = torch.jit.script(Serving(model, device))
    return scripted.eval()
