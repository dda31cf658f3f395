"""Source spaces: where the candidate dipoles sit.

All positions are in metres, in the head coordinate frame of the electrodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SourceSpace"]


@dataclass(frozen=True)
class SourceSpace:
    """A set of candidate dipole locations.

    Parameters
    ----------
    pos : ndarray, shape (n_sources, 3)
        Source positions in metres.
    nn : ndarray, shape (n_sources, 3)
        Unit normals (the fixed-orientation direction of each source). For
        volume grids, where no surface normal exists, ``nn`` is ``(0, 0, 1)``
        and ``kind == "volume"``.
    tris : ndarray of int, shape (n_tris, 3) | None
        Triangles of a surface source space (indices into ``pos``).
    kind : {"surface", "volume", "discrete"}
        What the source space represents. Only ``"surface"`` and
        ``"discrete"`` spaces carry meaningful normals.
    """

    pos: np.ndarray
    nn: np.ndarray
    tris: np.ndarray | None = None
    kind: str = "surface"
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def n_sources(self) -> int:
        """Number of sources."""
        return int(self.pos.shape[0])
