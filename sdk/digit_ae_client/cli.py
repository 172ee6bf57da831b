"""`ae-client`: the service's verbs from a shell.

    ae-client encode three.png eight.png > embeddings.json
    ae-client decode embeddings.json -o digits/
    ae-client reconstruct three.png -o three-redrawn.png
    ae-client interpolate three.png eight.png --steps 16 --method slerp --gif path.gif
    ae-client model
    ae-client ready

Exit codes: 0 done; 1 the service refused (its problem is printed); 2 a usage error or a local
file that cannot be read or written; 3 the service cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from digit_ae_client import files, images
from digit_ae_client.errors import ApiError, InvalidInput, Unreachable
from digit_ae_client.sync import Client

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

Command = Callable[[Client, argparse.Namespace], int]


def cmd_encode(ae: Client, args: argparse.Namespace) -> int:
    rows = ae.encode(args.images, **_image_options(args), request_id=args.request_id)
    _print_json({"inputs": args.images, "embeddings": [_floats(row) for row in rows]})
    return EXIT_OK


def cmd_decode(ae: Client, args: argparse.Namespace) -> int:
    rows, names = files.read_embeddings(args.embeddings)
    pictures = ae.decode(rows, request_id=args.request_id)
    if args.output is None:
        _print_json({"images": [_b64_png(picture) for picture in pictures]})
        return EXIT_OK
    for picture, path in zip(pictures, files.output_paths(args.output, names), strict=True):
        picture.save(path, "PNG")
        print(f"wrote {path}")
    return EXIT_OK


def cmd_reconstruct(ae: Client, args: argparse.Namespace) -> int:
    result = ae.reconstruct(args.images, **_image_options(args), request_id=args.request_id)
    if args.output is None:
        pictures = [_b64_png(picture) for picture in result.images]
        _print_json({"inputs": args.images, "mse": result.mse, "images": pictures})
        return EXIT_OK
    names = [Path(name).stem for name in args.images]
    outputs = files.output_paths(args.output, names)
    for picture, mse, path in zip(result.images, result.mse, outputs, strict=True):
        picture.save(path, "PNG")
        print(f"wrote {path} (mse {mse:.4g})")
    return EXIT_OK


def cmd_interpolate(ae: Client, args: argparse.Namespace) -> int:
    start, end = files.endpoint(args.start), files.endpoint(args.end)
    path = ae.interpolate(
        start, end, args.steps, args.method, **_image_options(args), request_id=args.request_id
    )
    if args.gif:
        path.save_gif(args.gif, args.frame_ms)
        print(f"wrote {args.gif} ({len(path.frames)} frames, {path.method})")
    if args.strip:
        path.save_strip(args.strip)
        print(f"wrote {args.strip} ({len(path.frames)} frames, {path.method})")
    if not (args.gif or args.strip):
        frames = [
            {"t": t, "embedding": _floats(row), "image": _b64_png(picture)}
            for t, row, picture in zip(path.t, path.embeddings, path.frames, strict=True)
        ]
        _print_json({"method": path.method, "steps": len(frames), "frames": frames})
    return EXIT_OK


def cmd_model(ae: Client, args: argparse.Namespace) -> int:
    _print_json(ae.model(request_id=args.request_id), indent=2)
    return EXIT_OK


def cmd_ready(ae: Client, args: argparse.Namespace) -> int:
    if ae.ready(request_id=args.request_id):
        print("ready")
        return EXIT_OK
    print("not ready")
    return EXIT_REFUSED


def _image_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"invert": args.invert, "fit": args.fit}


def _floats(row: np.ndarray) -> list[float]:
    return [float(str(v)) for v in row]  # float32's shortest text, not float64's 17 digits


def _b64_png(picture: Image.Image) -> str:
    return images.b64(images.png_bytes(picture))


def _print_json(data: object, indent: int | None = None) -> None:
    print(json.dumps(data, indent=indent))


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    connection = common.add_argument_group("connection (also accepted before the command)")
    # SUPPRESS: given before or after the command, neither place resets the other.
    connection.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="service URL (default: $AE_URL, else http://127.0.0.1:8000)",
    )
    connection.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help="sent as Authorization: Bearer KEY (default: $AE_API_KEY)",
    )
    connection.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help=f"seconds to wait for each try (default: {DEFAULT_TIMEOUT:g})",
    )
    connection.add_argument(
        "--retries",
        type=int,
        default=argparse.SUPPRESS,
        help=f"tries after the first, on connection errors and 503 (default: {DEFAULT_RETRIES})",
    )
    connection.add_argument(
        "--request-id",
        default=argparse.SUPPRESS,
        help="sent as X-Request-ID (default: a new random id)",
    )
    parser = argparse.ArgumentParser(
        prog="ae-client",
        description="Encode, decode, reconstruct and interpolate handwritten digits with the "
        "digit autoencoder service.",
        epilog="exit codes: 0 done, 1 the service refused, 2 usage or local file error, "
        "3 service unreachable",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_commands(commands, common)
    return parser


def _add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    image_options = argparse.ArgumentParser(add_help=False)
    image_options.add_argument(
        "--invert",
        choices=("auto", "true", "false"),
        help="light ink on dark is what the model knows; auto "
        "inverts dark on light (default: the service's, auto)",
    )
    image_options.add_argument(
        "--fit",
        choices=("mnist", "stretch"),
        help="how other sizes become 28x28 (default: the service's, mnist)",
    )

    def add(name: str, run: Command, help: str, *extra: argparse.ArgumentParser) -> Any:
        sub = commands.add_parser(name, help=help, description=help, parents=[common, *extra])
        sub.set_defaults(run=run)
        return sub

    sub = add("encode", cmd_encode, "print the embeddings of images as JSON", image_options)
    sub.add_argument("images", nargs="+", metavar="IMAGE", help="PNG (or other image) files")
    sub = add("decode", cmd_decode, "draw the digits of embeddings")
    sub.add_argument(
        "embeddings",
        metavar="EMBEDDINGS.json",
        help="a JSON file (- for stdin): one embedding, several, "
        "or the output of `ae-client encode`",
    )
    sub.add_argument(
        "-o",
        "--output",
        help="a PNG file, or a folder for several (default: print base64 PNGs as JSON)",
    )
    sub = add("reconstruct", cmd_reconstruct, "redraw images through the model", image_options)
    sub.add_argument("images", nargs="+", metavar="IMAGE", help="PNG (or other image) files")
    sub.add_argument(
        "-o",
        "--output",
        help="a PNG file, or a folder for several (default: print MSEs and base64 PNGs as JSON)",
    )
    sub = add("interpolate", cmd_interpolate, "frames between two digits", image_options)
    sub.add_argument("start", help="an image file, or a .json file with one embedding")
    sub.add_argument("end", help="an image file, or a .json file with one embedding")
    sub.add_argument(
        "--steps", type=int, default=10, help="frames, both ends included (default: 10)"
    )
    sub.add_argument(
        "--method",
        choices=("linear", "slerp"),
        default="linear",
        help="path between the embeddings (default: linear)",
    )
    sub.add_argument("--gif", help="write an animated GIF here")
    sub.add_argument("--strip", help="write the frames side by side in one PNG here")
    sub.add_argument(
        "--frame-ms", type=int, default=100, help="GIF frame duration in ms (default: 100)"
    )
    add("model", cmd_model, "print the live model's metadata and limits as JSON")
    add("ready", cmd_ready, "print whether the service is ready (exit 0) or not (exit 1)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with Client(
            getattr(args, "url", None),
            api_key=getattr(args, "api_key", None),
            timeout=getattr(args, "timeout", DEFAULT_TIMEOUT),
            retries=getattr(args, "retries", DEFAULT_RETRIES),
        ) as ae:
            args.request_id = getattr(args, "request_id", None)
            run: Command = args.run
            return run(ae, args)
    except ApiError as exc:
        rid = f" (request id {exc.request_id})" if exc.request_id else ""
        return _fail(f"{exc.title}: {exc.detail}{rid}", EXIT_REFUSED)
    except Unreachable as exc:
        return _fail(str(exc), EXIT_UNREACHABLE)
    except InvalidInput as exc:
        return _fail(str(exc), EXIT_USAGE)
    except BrokenPipeError:  # `ae-client ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush passes
        return EXIT_OK
    except OSError as exc:  # the local files: unreadable inputs, unwritable outputs
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_USAGE)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
