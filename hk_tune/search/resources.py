"""What trials would run on: this machine, counted without starting Ray, or a running cluster,
read by connecting to it as a driver for a moment. `hk-tune doctor` reports both.

    this_machine()              # {"CPU": 16.0, "GPU": 1.0, "memory": 1.3e11, "nodes": 1.0, ...}
    cluster_totals("head:6379") # the cluster's totals, as `ray.cluster_resources()` gives them
"""

from __future__ import annotations

import os
import socket

from hk_tune.config.space import SearchConfig
from hk_tune.errors import ConfigError
from hk_tune.search.executor import DRIVER_CPU, choose_executor, cpus_per_trial, gpus_per_trial
from hk_tune.search.ray_internals import local_ray_gpus

CONNECT_TIMEOUT_S = 5.0  # a head that does not accept a TCP connection in this time is down
NO_ANSWER_FIX = ("start the cluster (ray start --head on that host), check the address and the "
                 "firewall, or leave --address out to use local Ray")


def this_machine() -> dict[str, float]:
    """The CPUs, GPUs and memory local Ray would use here (its defaults: every CPU this process
    may run on, every visible NVIDIA GPU, the machine's memory), without starting it.

    `usable_GPU` is how many of those GPUs torch can use: Ray counts GPUs through the driver,
    so a CPU build of torch on a GPU machine gets GPU trials it cannot run.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"CPU": float(cpus or 1), "GPU": float(local_ray_gpus()), "memory": float(memory),
            "nodes": 1.0, "usable_GPU": float(_torch_gpus())}


def _torch_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cluster_totals(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> dict[str, float]:
    """Connects to the Ray cluster at `address`, reads its resource totals and disconnects.

    Args:
        address: what `--address` takes: `host:port` of the head's GCS, `ray://host:port`, or
            `auto` (the cluster this machine belongs to).
        timeout_s: how long a `host:port` head may take to accept a connection. Ray's own
            connect retries for a minute; a head that is down is reported within this time.

    Returns:
        Ray's totals (`CPU`, `GPU`, `memory` in bytes, custom resources) and `nodes`, the
        number of alive nodes.

    Raises:
        ConnectionError: naming the address, when the head does not answer.
    """
    import ray

    _probe(address, timeout_s)
    connected_here = not ray.is_initialized()
    try:
        if connected_here:
            ray.init(address=address, log_to_driver=False, configure_logging=False,
                     logging_level="ERROR")
        totals = {k: float(v) for k, v in ray.cluster_resources().items()}
        totals["nodes"] = float(sum(1 for node in ray.nodes() if node.get("Alive")))
        return totals
    except ConnectionError:
        raise
    except Exception as error:  # Ray raises several types for a wrong or foreign address
        text = " ".join(str(error).split())[:300]
        raise ConnectionError(f"cannot connect to Ray at {address}: {text}") from None
    finally:
        if connected_here and ray.is_initialized():
            ray.shutdown()  # a driver that connected only disconnects; the cluster keeps running


def _probe(address: str, timeout_s: float) -> None:
    """Fails fast when `address` names a host and port that accept no connection."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # `auto`, `local`: Ray finds the cluster itself and fails fast when there is none
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        reason = getattr(error, "strerror", None) or error
        raise ConnectionError(f"Ray at {address} does not answer ({reason})") from None


def check_answers(address: str, where: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuses a cluster address whose head accepts no connection, before anything starts.

    Raises:
        ConfigError: naming `where` (the option), the address and what to do.
    """
    try:
        _probe(address, timeout_s)
    except ConnectionError as error:
        raise ConfigError(f"{where} {address}: {error}; {NO_ANSWER_FIX}") from None


def check_fits(space: SearchConfig, totals: dict[str, float], where: str) -> None:
    """Refuses a space whose one trial needs more CPUs or GPUs than `totals` (a fixed set of
    machines: local Ray) holds: Tune would wait for them forever.

    Raises:
        ConfigError: naming the resources asked for and what there is.
    """
    driver = DRIVER_CPU if choose_executor(space) == "train" else 0.0
    cpus, gpus = cpus_per_trial(space) + driver, gpus_per_trial(space)
    have_cpus, have_gpus = totals.get("CPU", 0.0), totals.get("GPU", 0.0)
    if cpus > have_cpus + 1e-9:
        shown = f"{cpus:g} CPUs" + (f" ({driver:g} for its Ray Train driver)" if driver else "")
        raise ConfigError(f"{where}: resources: one trial needs {shown} and local Ray has "
                          f"{have_cpus:g}; allowed: num_workers × cpus_per_worker of at most "
                          f"{have_cpus - driver:g}")
    if gpus > have_gpus + 1e-9:
        raise ConfigError(f"{where}: resources: one trial needs {gpus:g} GPUs and local Ray has "
                          f"{have_gpus:g}; allowed: gpus_per_worker: 0 here, or a cluster "
                          "with GPUs (--address)")
