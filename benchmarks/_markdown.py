"""Writing one script's section of a shared results file (benchmarks/RESULTS_SCALE.md)."""

from __future__ import annotations

import os


def write_section(path: str, section: str, begin: str, end: str) -> None:
    """Replace the part of ``path`` between the markers ``begin`` and ``end``
    (``section`` carries both), or append ``section`` if the file has none.

    The file is read just before writing, so scripts that share it keep each
    other's sections.
    """
    text = open(path).read() if os.path.exists(path) else "# Results at scale\n"
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as handle:
        handle.write(text)
