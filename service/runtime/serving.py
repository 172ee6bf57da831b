"""The model's methods with the service's pre- and post-processing, as one TorchScript call each.

The inference thread hands the GIL back to the event loop for every torch operation it calls
from Python, and under load each hand-back waits for the busy loop to let go again: a forward
pass followed by an MSE, a rounding and two copies to the host costs ten waits a batch. Scripted
together, a batch costs one.

The same goes for decoding the digits that arrive as 28x28 8-bit grey PNGs (most of them):
`PngServing`'s methods take the batch's files, as `png.canonical_grey8` rewrote them, and
unfilter them with libpng inside the call, where the event loop would have spent about half of
its time per request on it. libpng comes from torchvision's image library, loaded on its own.
The same batch may also hold digits that came as 28x28 8-bit pixels (an OIP `UINT8` tensor):
they are read as they are, so a native PNG request and an OIP one share a forward pass.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from service.codec.digits import RAW_PIXELS, SIDE

log = logging.getLogger("service")
# torchvision's C++ image operators (torch.ops.image), by file name across its versions.
IMAGE_LIBRARIES = ("image_stable.so", "image.so", "image_stable.pyd", "image.pyd")


class Serving(nn.Module):
    """Wraps a loaded autoencoder; every method takes and returns batches on the host."""

    def __init__(self, model: torch.jit.ScriptModule, device: torch.device) -> None:
        super().__init__()
        self.model = model
        self.device = device
        # a call's input tensors while it runs (see `call`)
        self.held = torch.jit.Attribute([], list[Tensor])

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


class PngServing(Serving):
    """`Serving`, and the same for batches of PNG files, which it decodes, and of raw pixels."""

    @torch.jit.export
    def encode_png(self, files: Tensor, ends: list[int], codes: Tensor, size: int) -> Tensor:
        """Digits (see `to_model_input`) -> embeddings (size, D); rows past them are padding."""
        return self.encode(to_model_input(files, ends, codes, size))

    @torch.jit.export
    def reconstruct_png(
        self, files: Tensor, ends: list[int], codes: Tensor, size: int
    ) -> tuple[Tensor, Tensor]:
        """Digits (see `to_model_input`) -> what `forward` returns for them."""
        return self.forward(to_model_input(files, ends, codes, size))


def to_model_input(
    files: Tensor,
    ends: list[int],
    codes: Tensor,
    size: int,
    raw: int = RAW_PIXELS,  # TorchScript reads no globals in a function: the codec's through here
    side: int = SIDE,
) -> Tensor:
    """n digits end to end in `files` (bytes, uint8), `ends` where each one ends, and each one's
    code (n,) (`codec.png_items`): a 28x28 grey PNG with its `invert` rule, or 28x28 pixels as
    they are -> (size, 28, 28) float32 in [0, 1] as `codec.prepare` makes it of the PNG (or of
    the pixels' PNG), zero rows after the n digits. Bit for bit: `tests/test_serving.py`."""
    images: list[Tensor] = []
    start = 0
    kinds: list[int] = codes.to(torch.int64).tolist()  # (n,) as numbers, one per digit
    for i, end in enumerate(ends):  # (TorchScript's zip takes no `strict`)
        if kinds[i] == raw:
            images.append(files[start:end].view(side, side))  # (28, 28), a view of the bytes
        else:
            images.append(torch.ops.image.decode_png(files[start:end], 0, False)[0])  # as stored
        start = end
    pixels = torch.stack(images)  # (n, H, W) uint8
    n, height, width = pixels.shape
    light = pixels >= 128  # as float32 over 255, above one half
    # Most of the frame light means dark ink on paper: the whole image's count less the inside's.
    frame_light = light.sum(dim=(1, 2)) - light[:, 1:-1, 1:-1].sum(dim=(1, 2))  # (n,)
    frame = height * width - max(height - 2, 0) * max(width - 2, 0)
    # codec.INVERT_CODES; RAW_PIXELS is neither 1 nor 2: never flipped
    flip = torch.where(codes == 2, 2 * frame_light > frame, codes == 1)
    grey = pixels.to(torch.float32) * (1.0 / 255.0)  # (n, H, W)
    grey = torch.where(flip[:, None, None], 1.0 - grey, grey)
    return torch.cat([grey, grey.new_zeros(size - n, height, width)])  # (size, H, W)


def call(serving: torch.jit.ScriptModule, method: str, *args: Any) -> tuple[Tensor, ...]:
    """`serving.<method>(*args)`, as a tuple of its outputs, with its input tensors held by the
    module meanwhile.

    A tensor made in Python has a Python object, which torch keeps alive while C++ code holds
    the tensor too; when the last C++ reference goes, torch lets go of the object, and that takes
    the GIL. A scripted call drops its arguments as it runs, with the GIL released, so each input
    made in Python cost the inference thread one more wait for the busy event loop: for a batch
    of PNG files, three waits a call instead of one (measured beside a thread that keeps the GIL
    busy). Held here as well, the inputs are let go after the call, by Python, holding the GIL.
    (`torch.tensor` releases the GIL to copy, too: `runtime._png_args` uses `from_numpy`.)"""
    serving.held = [arg for arg in args if isinstance(arg, Tensor)]
    try:
        outputs = getattr(serving, method)(*args)
    finally:
        serving.held = []
    return outputs if isinstance(outputs, tuple) else (outputs,)


def _to_uint8(y: Tensor) -> Tensor:
    """[0, 1] -> 0..255, rounding half to even (as numpy's rint does)."""
    return (y.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def script(model: torch.jit.ScriptModule, device: torch.device) -> torch.jit.ScriptModule:
    wrapper = PngServing(model, device) if load_png_decoder() else Serving(model, device)
    return jit_script(wrapper)


def jit_script(module: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # TorchScript is deprecated in this torch; the file format is our contract for now.
        warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", FutureWarning)
        scripted: torch.jit.ScriptModule = torch.jit.script(module)
    return scripted.eval()


def decodes_png(serving: torch.jit.ScriptModule) -> bool:
    return hasattr(serving, "reconstruct_png")


def load_png_decoder() -> bool:
    """Register torch.ops.image.decode_png from torchvision's image library alone: importing
    torchvision would load all of it, some 160 MB more resident memory. Without the library
    (torchvision has deprecated its image codecs), PNGs are decoded on the event loop."""
    if hasattr(torch.ops.image, "decode_png"):
        return True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    folder = Path(spec.origin).parent
    library = next((folder / name for name in IMAGE_LIBRARIES if (folder / name).exists()), None)
    if library is not None:
        try:
            torch.ops.load_library(str(library))  # type: ignore[no-untyped-call]
        except OSError as exc:
            log.warning("torchvision's image library does not load (%s)", exc)
    return hasattr(torch.ops.image, "decode_png")
