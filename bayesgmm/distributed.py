"""Joining JAX's distributed runtime with errors a person can act on.

``jax.distributed.initialize`` aborts the whole process (a C++ fatal error,
not a Python exception) when the coordinator cannot be reached. This module
checks first that the coordinator answers, within a timeout, and raises a
``RuntimeError`` that says what to check; then it hands over to JAX.
"""

from __future__ import annotations

import socket
import time


def _parse_address(address: str) -> tuple[str, int]:
    host, separator, port = address.rpartition(":")
    if not separator or not host or not port.isdigit():
        raise ValueError(
            f"coordinator_address {address!r} is not of the form 'host:port', "
            "for example '10.0.0.1:12345'."
        )
    return host.strip("[]"), int(port)


def wait_for_coordinator(address: str, timeout: float) -> None:
    """Block until a TCP connection to ``address`` succeeds, or raise after ``timeout`` s."""
    host, port = _parse_address(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"The coordinator at {address} did not answer within {timeout:g} s "
                    f"({error.strerror or error}). Start process 0 first, and check that "
                    "every process uses the same coordinator address and port."
                ) from None
            time.sleep(0.2)


def initialize(coordinator_address: str, num_processes: int, process_id: int, timeout: int = 60) -> None:
    """Join (or, as process 0, start) a multi-process JAX run.

    After this, ``GaussianMixture(..., devices="all").fit(X_local)`` fits one
    model on the rows of every process.

    Parameters
    ----------
    coordinator_address : str
        'host:port' where process 0 listens.
    num_processes : int
        Number of processes in the run.
    process_id : int
        This process's index, 0 to num_processes - 1.
    timeout : int, default=60
        Seconds to wait for the coordinator and the other processes.

    Raises
    ------
    ValueError
        For an address that is not 'host:port' or an out-of-range process id.
    RuntimeError
        When the coordinator does not answer within ``timeout`` seconds.
    """
    import jax

    _parse_address(coordinator_address)
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"process_id={process_id} is outside 0..{num_processes - 1}; give each "
            "process a distinct id below num_processes."
        )
    if process_id != 0:
        wait_for_coordinator(coordinator_address, timeout)
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout,
    )
