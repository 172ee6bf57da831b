"""The device check (`make device-check`): the service on a device, against the CPU's answers,
under the benchmark's /reconstruct load, with its memory. Run `python -m scripts.device_check`."""
