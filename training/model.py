"""The seed's convolutional autoencoder: 28x28 digit -> 64 numbers -> 28x28 digit.

The architecture is the seed's exactly (see DESIGN.md); only the embedding is flattened so
that the exported `encode` returns N x 64 instead of N x 64 x 1 x 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class AutoencoderConfig:
    """Hyperparameters of the architecture (the seed's values)."""

    image_side: int = 28
    channels: tuple[int, int, int] = (16, 32, 64)  # the last one is the embedding size
    kernel: int = 3
    bottleneck_kernel: int = 7  # 7x7 feature map -> 1x1

    @property
    def embedding_dim(self) -> int:
        return self.channels[-1]

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "embedding_dim": self.embedding_dim}


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, cfg.kernel, stride=2, padding=1),  # (N, 16, 14, 14)
            nn.ReLU(),
            nn.Conv2d(c1, c2, cfg.kernel, stride=2, padding=1),  # (N, 32, 7, 7)
            nn.ReLU(),
            nn.Conv2d(c2, c3, cfg.bottleneck_kernel),  # (N, 64, 1, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)  # (N, 1, 28, 28) -> (N, 64)


class Decoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.channels
        self.net = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, cfg.bottleneck_kernel),  # (N, 32, 7, 7)
            nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, cfg.kernel, 2, 1, output_padding=1),  # (N, 16, 14, 14)
            nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, cfg.kernel, 2, 1, output_padding=1),  # (N, 1, 28, 28)
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])  # (N, 64) -> (N, 64, 1, 1) -> (N, 1, 28, 28)


class Autoencoder(nn.Module):
    """`encode`, `decode` and `forward = decode(encode(x))`, all scriptable and exported."""

    def __init__(self, cfg: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or AutoencoderConfig()
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg)

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)  # (N, 1, 28, 28) in [0, 1] -> (N, 64)

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)  # (N, 64) -> (N, 1, 28, 28) in [0, 1]

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))  # (N, 1, 28, 28) -> (N, 1, 28, 28)
