"""Counting the compiled programs a piece of code needs.

Where JAX's persistent compilation cache is on (a user's setting, or a run
of the suite with ``JAX_COMPILATION_CACHE_DIR``), a program may be loaded
from disk instead of compiled; that still means the in-memory cache missed,
so both events count.
"""

import jax

EVENTS = (
    "/jax/core/compile/backend_compile_duration",
    "/jax/compilation_cache/cache_retrieval_time_sec",
)


class CompileCounter:
    """Counts XLA compilations and persistent-cache loads while active (a context manager)."""

    def __init__(self):
        self.count = 0

    def _listen(self, event, duration, **kwargs):
        if event in EVENTS:
            self.count += 1

    def __enter__(self):
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listen)
