"""Damaged saved files: one ValueError naming the file and the damage, nothing unbounded read.

Each test damages a file the way a disk, a transfer or a hand edit does (a
damaged .npy header, a declared shape of 10**12 elements, a zip bomb, an
encrypted member, JSON nested 10**5 deep, a failing HDF5 filter) and checks
the message. The Bayesian files are saves of conftest's tiny_nuts_fit.
"""

import io
import shutil
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from bayesgmm import GaussianMixture, _archive, load, save


@pytest.fixture(scope="module")
def fitted():
    X, _ = make_blobs(n_samples=60, centers=2, n_features=2, random_state=0)
    return GaussianMixture(2, random_state=0).fit(X)


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "model.npz"
    save(fitted, path)
    return path


def _members(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write_members(path, members: dict) -> None:
    """A new, valid zip (correct CRC-32s) of the given member bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npy_header(shape, descr="<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _with_metadata_text(members: dict, text: str) -> dict:
    """Members whose metadata is ``text`` with a matching digest (it passes the seal)."""
    import hashlib

    return dict(members, **{
        "metadata.npy": _npy(np.array(text)),
        "metadata_sha256.npy": _npy(np.array(hashlib.sha256(text.encode()).hexdigest())),
    })


def test_damaged_npy_header(saved):
    members = _members(saved)
    members["means_.npy"] = members["means_.npy"].replace(b"(2, 2)", b"(2, 2 ", 1)
    _write_members(saved, members)
    with pytest.raises(ValueError, match=r"model\.npz: cannot be read: reading the header of the "
                                         r"array 'means_' failed \(TokenError: .*truncated or "
                                         r"corrupted"):
        load(saved)


def test_declared_huge_shape_is_refused_before_allocating(saved):
    members = _members(saved)
    members["weights_.npy"] = _npy_header((10**12,)) + b"\x00" * 64  # 7.28 TiB declared
    _write_members(saved, members)
    with pytest.raises(ValueError, match=r"model\.npz: the array 'weights_' is stored with shape "
                                         r"\(1000000000000,\) and dtype float64, but the metadata "
                                         r"describes \(2,\) and float64"):
        load(saved)


def test_zip_bomb_member_is_not_decompressed(saved):
    members = _members(saved)
    n_values = 10**7  # 80 MB of zeros, deflated to about 80 kB
    bomb = zipfile.ZipInfo("means_.npy")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(saved, "w") as archive:
        for name, data in members.items():
            if name != "means_.npy":
                archive.writestr(name, data)
        with archive.open(bomb, "w") as member:
            member.write(_npy_header((n_values,)))
            for _ in range(10):
                member.write(bytes(8 * n_values // 10))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"model\.npz: the array 'means_' is stored with "
                                             r"shape \(10000000,\) and dtype float64, but the "
                                             r"metadata describes \(2, 2\)"):
            load(saved)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # the 80 MB member was never decompressed


def _recompress(path, name):
    """Rewrite the archive with member ``name`` deflated (streamed, never held whole)."""
    source = path.with_suffix(".source")
    shutil.move(path, source)
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as archive:
        for info in original.infolist():
            target = zipfile.ZipInfo(info.filename)
            if info.filename == name:
                target.compress_type = zipfile.ZIP_DEFLATED
            with original.open(info) as read, archive.open(target, "w") as write:
                shutil.copyfileobj(read, write, 1 << 20)
    source.unlink()


def _patch_central_entry(path, name: str, patch) -> None:
    """Apply ``patch(entry: bytearray)`` to the central-directory entry of ``name``."""
    content = bytearray(path.read_bytes())
    start = content.index(b"PK\x01\x02")
    while True:
        name_length = struct.unpack_from("<H", content, start + 28)[0]
        if content[start + 46:start + 46 + name_length] == name.encode():
            break
        start = content.index(b"PK\x01\x02", start + 4)
    entry = content[start:start + 46]
    patch(entry)
    content[start:start + 46] = entry
    path.write_bytes(bytes(content))


def test_member_declaring_more_than_deflate_can_hold(saved):
    _recompress(saved, "means_.npy")
    declared = 2_400_000_000  # 2.4 GB claimed from a few dozen deflated bytes

    def claim(entry):
        struct.pack_into("<I", entry, 24, declared)

    _patch_central_entry(saved, "means_.npy", claim)
    with pytest.raises(ValueError, match=r"model\.npz: the archive member 'means_\.npy' declares "
                                         r"2400000000 bytes from \d+ stored bytes"):
        load(saved)


def test_encrypted_member(saved):
    def encrypt(entry):
        flags = struct.unpack_from("<H", entry, 8)[0]
        struct.pack_into("<H", entry, 8, flags | 0x1)

    _patch_central_entry(saved, "means_.npy", encrypt)
    with pytest.raises(ValueError, match=r"model\.npz: the archive member 'means_\.npy' is "
                                         r"encrypted; bayesgmm never encrypts"):
        load(saved)


def test_deeply_nested_json(saved):
    depth = 10**5
    _write_members(saved, _with_metadata_text(_members(saved), "[" * depth + "]" * depth))
    with pytest.raises(ValueError, match=r"model\.npz: the metadata is not valid JSON "
                                         r"\(RecursionError\)"):
        load(saved)


def test_metadata_of_another_type(saved):
    members = _members(saved)
    members["metadata.npy"] = _npy(np.zeros(3))
    _write_members(saved, members)
    with pytest.raises(ValueError, match=r"model\.npz: the array 'metadata' is stored with shape "
                                         r"\(3,\) and dtype float64"):
        load(saved)


def test_members_that_are_not_model_arrays(saved):
    members = _members(saved)
    _write_members(saved, dict(members, **{"notes.txt": b"hello"}))
    with pytest.raises(ValueError, match=r"model\.npz: the archive member 'notes\.txt' is not one "
                                         r"array of a model"):
        load(saved)
    _write_members(saved, dict(members, **{"extra.npy": _npy(np.zeros(2))}))
    with pytest.raises(ValueError, match=r"model\.npz: the archive holds arrays the metadata does "
                                         r"not describe \(\['extra'\]\)"):
        load(saved)


def test_parser_failures_of_any_kind_name_the_file():
    # What h5netcdf raises on a dangling dimension reference, say.
    with pytest.raises(ValueError, match=r"^m\.nc: cannot be read: reading the 'posterior' group "
                                         r"failed \(AttributeError: 'NoneType' object has no "
                                         r"attribute 'split'\); the file is truncated"), \
            _archive.reading("m.nc", "reading the 'posterior' group"):
        None.split("/")


# ------------------------------------------------------------ Bayesian (netCDF)


@pytest.fixture(scope="module")
def bayes_file(tiny_nuts_fit, tmp_path_factory):
    path = tmp_path_factory.mktemp("bayes") / "model.nc"
    save(tiny_nuts_fit[0], path)
    return path


@pytest.fixture
def saved_bayes(bayes_file, tmp_path):
    path = tmp_path / "model.nc"
    shutil.copy(bayes_file, path)
    return path


def test_bayesian_failing_hdf5_filter(saved_bayes):
    import h5py

    with h5py.File(saved_bayes, "r") as handle:
        chunk = handle["posterior/weights"].id.get_chunk_info(0)  # a gzip-compressed chunk
    content = bytearray(saved_bayes.read_bytes())
    content[chunk.byte_offset + 4:chunk.byte_offset + 16] = b"\xff" * 12
    saved_bayes.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"model\.nc: cannot be read: reading the 'posterior' "
                                         r"group failed \(OSError: .*filter returned failure"):
        load(saved_bayes)


def test_bayesian_declared_huge_shape(saved_bayes):
    import h5py

    with h5py.File(saved_bayes, "r+") as handle:
        del handle["posterior/weights"]
        handle["posterior"].create_dataset("weights", shape=(10**6, 10**6), chunks=(64, 64),
                                           dtype="f8", compression="gzip")  # 7.28 TiB declared
    with pytest.raises(ValueError, match=r"model\.nc: the variable 'posterior/weights' is stored "
                                         r"with shape \(1000000, 1000000\) and dtype float64, but "
                                         r"the metadata describes \(2, 20, 2\)"):
        load(saved_bayes)


def test_bayesian_deeply_nested_json(saved_bayes):
    import hashlib

    import h5py

    text = "[" * 10**5 + "]" * 10**5
    with h5py.File(saved_bayes, "r+") as handle:
        handle["bayesgmm"].attrs["metadata"] = text
        handle["bayesgmm"].attrs["metadata_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(ValueError, match=r"model\.nc: the metadata is not valid JSON "
                                         r"\(RecursionError\)"):
        load(saved_bayes)


def test_bayesian_missing_metadata_digest(saved_bayes):
    import h5py

    with h5py.File(saved_bayes, "r+") as handle:
        del handle["bayesgmm"].attrs["metadata_sha256"]
    with pytest.raises(ValueError, match=r"model\.nc: the 'bayesgmm' group has no "
                                         r"'metadata_sha256' attribute"):
        load(saved_bayes)


def test_bayesian_dataset_not_in_the_metadata(saved_bayes):
    import h5py

    with h5py.File(saved_bayes, "r+") as handle:
        handle["posterior"].create_dataset("extra", data=np.zeros(3))
    with pytest.raises(ValueError, match=r"model\.nc: the dataset 'posterior/extra' is not "
                                         r"described in the metadata"):
        load(saved_bayes)


def test_bayesian_not_hdf5_after_the_signature(saved_bayes):
    content = saved_bayes.read_bytes()
    saved_bayes.write_bytes(content[:8] + bytes(len(content) - 8))
    with pytest.raises(ValueError, match=r"model\.nc: cannot be read: opening the netCDF-4 "
                                         r"\(HDF5\) file failed \(OSError"):
        load(saved_bayes)


def test_bayesian_link_to_another_file(saved_bayes, tmp_path):
    import h5py

    with h5py.File(tmp_path / "elsewhere.h5", "w") as other:
        other.create_dataset("weights", data=np.zeros((2, 20, 2)))
    with h5py.File(saved_bayes, "r+") as handle:
        handle["posterior/link"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "weights")
    with pytest.raises(ValueError, match=r"model\.nc: the HDF5 object 'posterior/link' is not a "
                                         r"group or a dataset stored in the file"):
        load(saved_bayes)
