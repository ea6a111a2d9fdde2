"""Where the data live: fixed-size blocks on the devices, sharded over a mesh or processes.

The data are laid out as ``X_blocks`` of shape (n_blocks, block_size,
n_features) with ``weight_blocks`` of shape (n_blocks, block_size); padding
rows carry weight zero and so contribute nothing. :class:`DataLayout`
places one data set (centred on the host at its weighted mean) on one
device or over a mesh; :func:`process_sum` adds host values over processes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.mixture import quadratic
from bayesgmm.mixture.parameters import component_bucket

# Bytes of one block's feature matrix (block_size, F), see bayesgmm.mixture.quadratic:
# small enough to stay in the last-level cache between the two matrix
# products that read it, large enough that the per-block overhead of the
# loop is amortised. Measured at N=1M, D=16, K=16 on 2 cores: 4096 rows for
# float64 and 8192 for float32 were fastest (benchmarks/profile_em.py).
BLOCK_BYTES = 1 << 23

MIN_BLOCK_SIZE = 256

MAX_BLOCK_SIZE = 1 << 16


def count_bucket(count: int) -> int:
    """Round ``count`` up to a multiple of 1/16 of the next power of two.

    Exact up to 16; then 18, 20, ..., 32, 36, 40, ..., 64, 72, ... Sizes
    within a bucket share one compiled program, and less than an eighth of
    the padded work (usually under a sixteenth) is wasted. (Coarser buckets,
    1, 2, 3, 4, 6, 8, 12, ..., padded N = 100k, D = 10, K = 8 by 31 %.)
    """
    if count <= 16:
        return max(count, 1)
    step = (1 << (count - 1).bit_length()) // 16
    return -(-count // step) * step


def block_layout(
    n_samples: int,
    n_components: int,
    n_features: int,
    itemsize: int = 8,
    covariance_type: str = "full",
) -> tuple[int, int]:
    """Block size and number of blocks for data of ``n_samples`` rows.

    Parameters
    ----------
    n_samples, n_components, n_features : int
    itemsize : int, default=8
        Bytes per element of the data's dtype (4 for float32).
    covariance_type : str, default='full'
        Sets the width of the feature matrix: 'diag' and 'spherical' have
        narrow ones and so take longer blocks.

    Returns
    -------
    block_size, n_blocks : int
        ``block_size * n_blocks >= n_samples``, both bucketed so that nearby
        sample counts reuse the same compiled program.
    """
    width = max(quadratic.feature_count(n_features, covariance_type), n_components)
    block_size = BLOCK_BYTES // (width * itemsize)
    block_size = int(np.clip(block_size, MIN_BLOCK_SIZE, MAX_BLOCK_SIZE))
    block_size = 1 << (block_size.bit_length() - 1)
    if n_samples <= block_size:
        return count_bucket(max(n_samples, 8)), 1
    return block_size, count_bucket(-(-n_samples // block_size))


def weighted_column_sum(weights: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``weights @ X`` on the host without BLAS.

    After a multithreaded call, OpenBLAS's worker threads keep spinning for
    about 0.1 s, and a device loop started meanwhile on the CPU backend
    shares the cores with them: ``weights @ X`` right before EM made the
    first ~100 ms of N=100k, D=10, K=8 fits run at 8.6 instead of 6.0 ms per
    iteration. NumPy's einsum (without ``optimize``) uses its own loops.

    Parameters
    ----------
    weights : ndarray of shape (n_samples,)
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_features,)
    """
    return np.einsum("n,nd->d", weights, X)


def _aligned_zeros(shape: tuple, dtype, alignment: int = 64) -> np.ndarray:
    """Zeros whose buffer starts on a 64-byte boundary, so the CPU backend can
    adopt it without a copy (see :func:`to_device`)."""
    n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(n_bytes + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start : start + n_bytes].view(dtype).reshape(shape)


def to_device(array: np.ndarray):
    """Place a host array on the default device.

    On the CPU backend a fresh, aligned array (from :func:`to_blocks`) is
    adopted through DLPack without a copy, which keeps the peak memory of a
    fit at one laid-out copy of the data; elsewhere it is copied as usual.
    Only for arrays nothing else will write to.
    """
    if jax.default_backend() == "cpu" and array.flags.c_contiguous and array.ctypes.data % 64 == 0:
        try:
            return jax.dlpack.from_dlpack(array)
        except (TypeError, ValueError, RuntimeError):  # an unsupported dtype or layout
            pass
    return jnp.asarray(array)


def to_blocks(array: np.ndarray, block_size: int, n_blocks: int, offset=None) -> np.ndarray:
    """Zero-pad the leading axis to ``block_size * n_blocks`` and split it into blocks.

    ``offset``, if given, is subtracted from the rows on the way (no extra copy).
    """
    padded = _aligned_zeros((block_size * n_blocks,) + array.shape[1:], array.dtype)
    if offset is None:
        padded[: array.shape[0]] = array
    else:
        np.subtract(array, offset, out=padded[: array.shape[0]])
    return padded.reshape((n_blocks, block_size) + array.shape[1:])


def from_blocks(blocks, n_samples: int) -> np.ndarray:
    """Inverse of :func:`to_blocks`: a host array of the first ``n_samples`` rows."""
    blocks = np.asarray(blocks)
    return blocks.reshape((-1,) + blocks.shape[2:])[:n_samples]


def _over_mesh(fn, mesh, n_sharded: int, n_replicated: int):
    """Wrap ``fn`` in ``shard_map``: the first ``n_sharded`` arguments are split
    over the mesh's data axis, the rest and the outputs are replicated."""
    if mesh is None:
        return fn
    from jax.sharding import PartitionSpec

    data = PartitionSpec(mesh.axis_names[0])
    return jax.shard_map(
        fn,
        mesh=mesh,
        in_specs=(data,) * n_sharded + (PartitionSpec(),) * n_replicated,
        out_specs=PartitionSpec(),
    )


def _axis_name(mesh):
    return None if mesh is None else mesh.axis_names[0]


def n_init_batches(n_init: int, layout: "DataLayout", n_components: int, n_features: int) -> int:
    """How many restarts to run at once so that the batch stays within memory.

    Batched restarts multiply the per-block intermediates and the
    responsibilities kept for initialisation; above ~256 MB they run in
    several batches instead.
    """
    block_size = layout.block_size
    per_init = 8 * (block_size * n_components * n_features + layout.n_rows * n_components)
    return max(1, min(n_init, (256 << 20) // max(per_init, 1)))


# --------------------------------------------------------------------------
# Data layout over devices and processes (host side)
# --------------------------------------------------------------------------


def resolve_mesh(devices):
    """A one-axis ``jax.sharding.Mesh`` from the ``devices`` argument of a fit.

    Parameters
    ----------
    devices : None, int, 'all', sequence of jax.Device, or jax.sharding.Mesh
        None: the default device, no sharding. int n: the first n devices.
        'all': every device of every process (multi-process runs). A Mesh
        must have one axis, or an axis named 'data'.

    Returns
    -------
    mesh : jax.sharding.Mesh or None
    """
    from jax.sharding import Mesh

    if devices is None:
        return None
    if isinstance(devices, Mesh):
        names = devices.axis_names
        if len(names) == 1:
            return devices
        if "data" not in names:
            raise ValueError(
                f"The mesh has axes {names} and none is named 'data'. Name the axis "
                "that splits the samples 'data', or pass a one-axis mesh."
            )
        other = [name for name in names if name != "data"]
        if any(devices.shape[name] != 1 for name in other):
            raise ValueError(
                f"The mesh's axes {other} have size > 1; bayesgmm shards only the "
                "samples. Pass a mesh whose only axis of size > 1 is 'data'."
            )
        return Mesh(devices.devices.reshape(-1), ("data",))
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"devices={devices!r} is not understood. Use 'all', an int, a list of devices or a Mesh.")
        device_list = jax.devices()
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"devices={devices} but {len(available)} device(s) are available. "
                f"Use an int between 1 and {len(available)}."
            )
        device_list = available[:devices]
    else:
        device_list = list(devices)
        if not device_list or not all(isinstance(d, jax.Device) for d in device_list):
            raise ValueError("devices must be None, 'all', an int, a non-empty list of jax devices or a Mesh.")
    return Mesh(np.array(device_list), ("data",))


def _process_max(value: int) -> int:
    """Maximum of an int over all processes (identity in a single process)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.array([value]))))


def process_sum(array: np.ndarray) -> np.ndarray:
    """Sum of a host array over all processes (identity in a single process)."""
    return _over_processes(array, np.sum)


def process_max(array: np.ndarray) -> np.ndarray:
    """Elementwise maximum of a host array over all processes (identity in one)."""
    return _over_processes(array, np.max)


def _over_processes(array: np.ndarray, reduce) -> np.ndarray:
    if jax.process_count() == 1:
        return array
    from jax.experimental import multihost_utils

    return reduce(np.asarray(multihost_utils.process_allgather(array)), axis=0)


class DataLayout(NamedTuple):
    """Where the rows of this process's data go: blocks per device, padding.

    Rows are split into ``n_local_devices`` contiguous parts of ``rows_per_device``
    rows; each part is zero-padded to ``n_blocks_per_device * block_size`` rows.
    ``n_components`` is the number of components a fit over this layout
    carries (:func:`component_bucket`).
    """

    n_rows: int  # rows held by this process
    rows_per_device: int
    block_size: int
    n_blocks_per_device: int
    mesh: object  # jax.sharding.Mesh or None
    n_components: int = 1

    @classmethod
    def create(
        cls,
        n_rows: int,
        n_components: int,
        n_features: int,
        mesh=None,
        itemsize: int = 8,
        covariance_type: str = "full",
        pad_components: bool = False,
    ) -> "DataLayout":
        """The layout of ``n_rows`` rows; ``pad_components`` pads the components to their bucket."""
        n_local_devices = 1 if mesh is None else len(mesh.local_devices)
        rows_per_device = -(-_process_max(n_rows) // n_local_devices)
        if pad_components:
            n_components = component_bucket(n_components, rows_per_device, n_features, covariance_type)
        block_size, n_blocks = block_layout(
            rows_per_device, n_components, n_features, itemsize, covariance_type
        )
        return cls(n_rows, rows_per_device, block_size, n_blocks, mesh, n_components)

    def blocks(self, array: np.ndarray, offset=None) -> np.ndarray:
        """Host array (n_rows, ...) -> padded (n_local_devices * n_blocks, block_size, ...)."""
        n_local_devices = 1 if self.mesh is None else len(self.mesh.local_devices)
        parts = []
        for device_index in range(n_local_devices):
            start = device_index * self.rows_per_device
            part = array[start : start + self.rows_per_device]
            parts.append(to_blocks(part, self.block_size, self.n_blocks_per_device, offset))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def put(self, array: np.ndarray, offset=None):
        """Lay out a host array and place it: sharded over the mesh, or on the default device."""
        blocks = self.blocks(array, offset)
        if self.mesh is None:
            return to_device(blocks)
        from jax.sharding import NamedSharding, PartitionSpec

        sharding = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0]))
        return jax.make_array_from_process_local_data(sharding, blocks)


def to_host(array) -> np.ndarray:
    """A replicated (possibly multi-process) array as a host NumPy array."""
    if getattr(array, "is_fully_addressable", True):
        return np.asarray(array)
    return np.asarray(array.addressable_data(0))


def local_rows(X):
    """This process's rows of a data matrix (NumPy, or a sharded ``jax.Array``).

    Returns
    -------
    rows : array-like of shape (n_local_samples, n_features)
    mesh : jax.sharding.Mesh or None
        The mesh ``X`` is sharded over, when it is a sharded ``jax.Array``.
    """
    from jax.sharding import NamedSharding

    if not isinstance(X, jax.Array):
        return X, None
    sharding = X.sharding
    mesh = sharding.mesh if isinstance(sharding, NamedSharding) else None
    if mesh is not None and (not sharding.spec or sharding.spec[0] is None):
        raise ValueError(
            "X is a jax.Array whose first (sample) axis is not sharded. Shard it with "
            "NamedSharding(mesh, PartitionSpec('data')) or pass a NumPy array."
        )
    if mesh is not None and len(mesh.axis_names) > 1:
        mesh = resolve_mesh(mesh)
    if X.is_fully_addressable:
        return np.asarray(X), mesh
    shards = sorted(X.addressable_shards, key=lambda shard: shard.index[0].start or 0)
    seen, rows = set(), []
    for shard in shards:
        start = shard.index[0].start or 0
        if start not in seen:
            seen.add(start)
            rows.append(np.asarray(shard.data))
    return np.concatenate(rows), mesh
