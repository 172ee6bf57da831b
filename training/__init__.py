"""Offline training of the digit autoencoder: data -> fit -> run report -> TorchScript file.

`python -m training --help` (or `ae-train --help`) lists every flag; `make train` rebuilds the
committed models/mnist-ae.pt. The service never imports this package.
"""
