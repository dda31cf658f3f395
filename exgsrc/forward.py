"""EEG forward models on concentric spheres (Berg & Scherg approximation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .source_space import SourceSpace

__all__ = ["Forward"]


@dataclass(frozen=True)
class Forward:
    """An EEG forward solution (lead field).

    Parameters
    ----------
    gain : ndarray, shape (n_channels, n_sources) or (n_channels, 3 * n_sources)
        Potential at each electrode (V) per unit dipole moment (A·m). For
        ``orientation == "free"`` the columns are source-major: x, y, z of
        source 0, then of source 1, ... (as MNE-Python).
    ch_names : tuple of str, length n_channels
    ch_pos : ndarray, shape (n_channels, 3)
        Electrode positions in metres, as given (before any projection).
    src : SourceSpace
    orientation : {"fixed", "free"}
        ``"fixed"``: one column per source, along ``src.nn``.
        ``"free"``: three columns per source along the x, y, z axes.
    """

    gain: np.ndarray
    ch_names: tuple[str, ...]
    ch_pos: np.ndarray
    src: SourceSpace
    orientation: str = "free"

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return int(self.gain.shape[0])

    @property
    def n_sources(self) -> int:
        """Number of sources (not columns)."""
        return self.src.n_sources

    @property
    def n_orient(self) -> int:
        """Columns per source: 1 (fixed) or 3 (free)."""
        return 3 if self.orientation == "free" else 1
