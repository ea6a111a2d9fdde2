"""Compiled programs kept on disk, so that a new process does not compile them again.

A model-selection grid compiles one XLA program per structure and shape,
and every new Python process (a script run again, a worker of a
``GridSearchCV``, the command line) compiles them anew: at small N that is
most of the time a user waits. JAX can keep compiled executables in a
directory and read them back in later processes (its persistent
compilation cache); :func:`enable_compilation_cache` turns that on for
every program JAX compiles in this process, bayesgmm's and the user's.
It is opt-in because it writes to disk and changes JAX's global settings,
which a library should not do unasked; the environment variable
``BAYESGMM_COMPILATION_CACHE`` does the same for a whole session,
including the ``bayesgmm`` command.

The directory must be trusted: JAX runs what it reads from there.
"""

from __future__ import annotations

import os
from pathlib import Path

ENVIRONMENT_VARIABLE = "BAYESGMM_COMPILATION_CACHE"


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/bayesgmm/jax``, or ``~/.cache/bayesgmm/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bayesgmm" / "jax"


def enable_compilation_cache(path=None) -> Path:
    """Keep compiled programs in ``path`` and read them back in later processes.

    Sets JAX's persistent compilation cache to ``path`` with no minimum
    compilation time or entry size, because most of bayesgmm's programs
    compile in under JAX's default threshold of one second yet many of
    them make up a sweep. Programs are still traced in each process; what
    a later process saves is their compilation. Results are the same with
    and without the cache. Calling it again with the same directory does
    nothing.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The directory, created if it does not exist. Default:
        ``$BAYESGMM_COMPILATION_CACHE`` when set, else the directory JAX
        already uses, else :func:`default_directory`. Only use a directory that no one you do
        not trust can write to: JAX executes what it reads from it.

    Returns
    -------
    path : pathlib.Path
        The directory in use, absolute.

    Raises
    ------
    ValueError
        When JAX already keeps its programs in another directory (JAX reads
        its cache directory once per process, so a second one would be
        ignored silently), or when ``path`` cannot be made a directory.
    """
    import jax

    if path is None:
        path = os.environ.get(ENVIRONMENT_VARIABLE) or jax.config.jax_compilation_cache_dir or default_directory()
    try:
        path = Path(os.fspath(path)).expanduser().resolve()
    except TypeError:
        raise ValueError(
            f"path must be a directory name (str or os.PathLike), got {type(path).__name__}."
        ) from None
    current = jax.config.jax_compilation_cache_dir
    if current and Path(current).expanduser().resolve() != path:
        raise ValueError(
            f"JAX already keeps its compiled programs in {current!r}; it reads that setting "
            f"once per process, so {str(path)!r} would be ignored. Call "
            "enable_compilation_cache() without a path to keep using it, or start a new process."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"Cannot use {str(path)!r} for compiled programs: {error.strerror or error}. "
            "Pass a directory that can be created and written."
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"Cannot write compiled programs into {str(path)!r}. Pass a writable directory.")
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def enable_from_environment() -> None:
    """Call :func:`enable_compilation_cache` when ``BAYESGMM_COMPILATION_CACHE`` is set."""
    if os.environ.get(ENVIRONMENT_VARIABLE):
        enable_compilation_cache()
