"""Train the seed autoencoder on MNIST digits, write a run report, export TorchScript.

    python -m training --recipe onecycle --out runs/default --export models/mnist-ae.pt
    python -m training --recipe seed --out runs/seed          # the seed's recipe, for comparison
    python -m training --dry-run --out /tmp/ae-dry            # a few batches; seconds
    python -m training --dataset mnist --data-dir data --download   # full MNIST, network needed

(`make train` runs the first line; `ae-train` is the same command.) Each epoch shows a progress
bar with the running training loss, then the held-out validation MSE. With the same `--seed`,
`--threads` and device, two runs give the same metrics.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from training import report
from training.data import SOURCES, DataError, Digits, load_digits, split_digits
from training.export import build_metadata, export, weights_sha256
from training.model import Autoencoder
from training.recipes import OPTIMIZERS, RECIPES, SCHEDULES, Recipe, make_optimizer, make_scheduler

DRY_RUN = {"train_size": 256, "val_size": 128, "epochs": 2}
RECIPE_FLAGS: dict[str, dict[str, Any]] = {
    "epochs": {"type": int, "metavar": "N", "help": "training epochs"},
    "batch_size": {"type": int, "metavar": "N", "help": "digits per batch"},
    "lr": {"type": float, "help": "learning rate (the peak of a schedule)"},
    "weight_decay": {"type": float, "metavar": "WD", "help": "weight decay of the optimizer"},
    "optimizer": {"choices": OPTIMIZERS, "help": "optimizer"},
    "schedule": {"choices": SCHEDULES, "help": "learning-rate schedule, stepped every batch"},
    "warmup": {"type": float, "metavar": "F", "help": "onecycle: share of steps rising to lr"},
    "div_factor": {"type": float, "metavar": "D", "help": "onecycle: starts at lr / D"},
    "final_div_factor": {"type": float, "metavar": "D", "help": "onecycle: ends at start lr / D"},
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every default, except where there is none (None, or an off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_mse: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # this process's CPU time: a steadier measure on a busy machine


DATA_FLAGS: dict[str, dict[str, Any]] = {
    "--dataset": dict(choices=SOURCES, default="mnist-5k", help="data source"),
    "--data-dir": dict(type=Path, default=Path("data"), metavar="DIR",
                       help="holds MNIST/raw/ or FashionMNIST/raw/ for those data sets"),
    "--download": dict(action="store_true",
                       help="download mnist or fashion-mnist into --data-dir when missing"),
    "--train-size": dict(type=int, default=4096, metavar="N", help="training digits"),
    "--val-size": dict(type=int, default=None, metavar="N",
                       help="held-out validation digits (default: all the rest)"),
    "--split-seed": dict(type=int, default=0, metavar="S",
                         help="seed of the stratified training/validation split"),
}  # fmt: skip
RUN_FLAGS: dict[str, dict[str, Any]] = {
    "--seed": dict(type=int, default=0, metavar="S",
                   help="seed of the initial weights and the batch order"),
    "--device": dict(default="auto", help="auto (cuda when present, else cpu), cpu, cuda[:N]"),
    "--threads": dict(type=int, default=2, metavar="N",
                      help="CPU threads for torch; fixed so that runs repeat exactly"),
    "--out": dict(type=Path, default=Path("runs/latest"), metavar="DIR",
                  help="folder for the run report (PNGs and metrics.json)"),
    "--export": dict(type=Path, default=None, metavar="PATH",
                     help="write the TorchScript model here (default: no export)"),
    "--name": dict(default="mnist-ae", help="model name in the metadata"),
    "--model-version": dict(default="1.0.0", metavar="V",
                            help="version; '+' and 8 hex digits of the weights' sha256 follow"),
    "--dry-run": dict(action="store_true", help="a quick check: {train_size} training and "
                      "{val_size} held-out digits, {epochs} epochs".format(**DRY_RUN)),
    "--no-progress": dict(action="store_true", help="no progress bars (shown on terminals only)"),
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    recipe = parser.add_argument_group("recipe")
    recipe.add_argument("--recipe", choices=sorted(RECIPES), default="onecycle",
                        help="named recipe; the flags below override its fields")  # fmt: skip
    for name, options in RECIPE_FLAGS.items():
        values = ", ".join(f"{r.name} {getattr(r, name)}" for r in RECIPES.values())
        text = f"{options['help']} (default: from the recipe: {values})"
        recipe.add_argument(f"--{name.replace('_', '-')}", **{**options, "help": text},
                            default=argparse.SUPPRESS)  # fmt: skip
    for title, flags in (("data", DATA_FLAGS), ("run and output", RUN_FLAGS)):
        group = parser.add_argument_group(title)
        for flag, options in flags.items():
            group.add_argument(flag, **options)
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Recipe]:
    args = build_parser().parse_args(argv)
    changes = {name: getattr(args, name, None) for name in RECIPE_FLAGS}
    if args.dry_run:
        args.train_size, args.val_size = DRY_RUN["train_size"], DRY_RUN["val_size"]
        changes["epochs"] = DRY_RUN["epochs"]
    return args, RECIPES[args.recipe].override(**changes)


def seed_everything(seed: int, threads: int) -> None:
    """Same seed, same threads, same device: same numbers."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_loader(digits: Digits, batch_size: int, seed: int) -> DataLoader[tuple[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(digits.images),
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        num_workers=0,
    )


def train_epoch(
    model: nn.Module,
    loader: DataLoader[tuple[torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    desc: str = "",
    progress: bool = True,
) -> float:
    """One pass over the training digits; returns the mean per-pixel MSE over the epoch."""
    model.train()
    total, count = 0.0, 0
    # disable=None: bars only on a terminal, so logs stay one line per epoch
    bar = tqdm(
        loader, desc=desc, leave=False, disable=None if progress else True, dynamic_ncols=True
    )
    for (x,) in bar:
        x = x.to(device)  # (B, 1, 28, 28)
        loss = F.mse_loss(model(x), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(x)
        count += len(x)
        bar.set_postfix(loss=f"{total / count:.5f}")
    return total / count


@torch.inference_mode()
def evaluate(model: nn.Module, digits: Digits, device: torch.device, batch: int = 1024) -> float:
    """Mean per-pixel MSE of the reconstructions of `digits`."""
    model.eval()
    total = 0.0
    for start in range(0, len(digits), batch):
        x = digits.images[start : start + batch].to(device)  # (b, 1, 28, 28)
        total += F.mse_loss(model(x), x, reduction="sum").item()
    return total / digits.images.numel()


def fit(
    model: nn.Module,
    train: Digits,
    val: Digits,
    recipe: Recipe,
    device: torch.device,
    seed: int,
    progress: bool = True,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> History:
    loader = make_loader(train, recipe.batch_size, seed)
    optimizer = make_optimizer(recipe, model)
    scheduler = make_scheduler(recipe, optimizer, len(loader))
    history, started, cpu_started = History(), time.perf_counter(), time.process_time()
    for epoch in range(1, recipe.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        desc = f"epoch {epoch}/{recipe.epochs}"
        loss = train_epoch(model, loader, optimizer, scheduler, device, desc, progress)
        history.train_loss.append(loss)
        history.val_mse.append(evaluate(model, val, device))
        history.lr.append(lr)
        print(f"{desc}  train {loss:.6f}  val {history.val_mse[-1]:.6f}  lr {lr:.2e}", flush=True)
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
    history.seconds = time.perf_counter() - started
    history.cpu_seconds = time.process_time() - cpu_started
    return history


def describe_run(
    args: argparse.Namespace,
    recipe: Recipe,
    pool: int,
    train: Digits,
    val: Digits,
    history: History,
    device: torch.device,
) -> dict[str, Any]:
    """The parts of the metadata that say how the model was made."""
    return {
        "dataset": {
            "name": train.name,
            "pool_size": pool,
            "train_size": len(train),
            "val_size": len(val),
            "split_seed": args.split_seed,
            "stratified": True,
        },
        "recipe": recipe.to_dict(),
        "metrics": {
            "train_loss_per_epoch": history.train_loss,
            "val_mse_per_epoch": history.val_mse,
            "lr_per_epoch": history.lr,
            "final_train_loss": history.train_loss[-1],
            "final_val_mse": history.val_mse[-1],
        },
        "training": {
            "seconds": round(history.seconds, 2),
            "cpu_seconds": round(history.cpu_seconds, 2),
            "device": str(device),
            "seed": args.seed,
            "epochs": recipe.epochs,
            "threads": args.threads,
            "dry_run": args.dry_run,
            "command": " ".join(["ae-train", *args.argv]),
        },
    }


def run(args: argparse.Namespace, recipe: Recipe) -> dict[str, Any]:
    digits = load_digits(args.dataset, args.data_dir, args.download)
    train, val = split_digits(digits, args.train_size, args.val_size, args.split_seed)
    seed_everything(args.seed, args.threads)
    device = resolve_device(args.device)
    print(
        f"{train.name}: {len(train)} training, {len(val)} held-out digits; recipe {recipe}; "
        f"device {device}",
        flush=True,
    )
    model = Autoencoder().to(device)
    snapshots = report.Snapshots(val, recipe.epochs, device)
    history = fit(model, train, val, recipe, device, args.seed, not args.no_progress, snapshots)
    version = f"{args.model_version}+{weights_sha256(model)[:8]}"
    parts = describe_run(args, recipe, len(digits), train, val, history, device)
    metadata = build_metadata(model.cpu(), name=args.name, version=version, **parts)
    report.write_report(args.out, metadata, snapshots, model, val)
    if args.export is not None:
        export(model, args.export, metadata)
        print(f"exported {args.export} (version {version})", flush=True)
    print(
        f"held-out MSE {history.val_mse[-1]:.6f} after {history.seconds:.1f} s; "
        f"report in {args.out}",
        flush=True,
    )
    return metadata


def main(argv: Sequence[str] | None = None) -> int:
    args, recipe = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        run(args, recipe)
    except DataError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0
