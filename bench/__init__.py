"""Load benchmark of the service: `python -m bench` (or `make bench`) writes bench/RESULTS.md.

It starts `python -m service` on a loopback port (once with batching on, once with
AE_MAX_BATCH_SIZE=1) and a bare echo app with the same HTTP stack, drives each with wrk, and
records requests/s, latency percentiles, errors and peak memory for every endpoint and
concurrency. See `python -m bench --help` for quick partial reruns.
"""
