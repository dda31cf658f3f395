"""Options of the reports: the ``report`` section of the workflow configuration.

Defaults here equal those of ``workflow/schemas/config.schema.yaml``, so the
reports built from Python (without a configuration) look like the workflow's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["Options", "VIEW_NAMES"]

#: views a source map can be seen from
VIEW_NAMES = ("left", "right", "top", "back", "front")

#: margin (s) kept from the epoch's end when the response window has no end
END_MARGIN = 0.05


@dataclass(frozen=True)
class Options:
    """What the reports show and flag.

    Attributes
    ----------
    response_window : tuple of (float | None, float | None)
        Seconds after the event in which peaks are searched (GFP peaks for the
        topographies and the source maps, the source estimates' peaks). None as the
        start: 0.05; None as the end: the epoch's end minus 0.05 s. The baseline is
        never included.
    n_peaks : int
        GFP peaks shown as topographies and source maps.
    max_baseline_gfp, min_baseline_gfp : float
        Mean whitened GFP in the baseline outside these limits is a warning. Pure
        noise whitened by a right covariance gives 1; regularised covariances give
        somewhat less; above 2 the averaged baseline holds twice the variance the
        covariance predicts (activity locked to the events, too few epochs for
        the covariance, non-stationary noise).
    slider_frames : int
        Frames of the time slider of each condition's source map (0: no slider).
    views : tuple of str
        Views of the source maps, of :data:`VIEW_NAMES`.
    """

    response_window: tuple = (0.05, None)
    n_peaks: int = 3
    max_baseline_gfp: float = 2.0
    min_baseline_gfp: float = 0.25
    slider_frames: int = 15
    views: tuple = ("left", "right", "top", "back")

    @classmethod
    def from_config(cls, cfg: Mapping | Options | None) -> Options:
        """Options from the configuration's ``report`` mapping (missing keys: defaults).

        Parameters
        ----------
        cfg : mapping | Options | None
            The ``report`` section, or a whole configuration holding one.

        Returns
        -------
        Options
        """
        if isinstance(cfg, Options):
            return cfg
        cfg = dict(cfg or {})
        if isinstance(cfg.get("report"), Mapping):
            cfg = dict(cfg["report"])
        kw = {k: cfg[k] for k in cls.__dataclass_fields__ if cfg.get(k) is not None}
        if "response_window" in kw:
            w = list(kw["response_window"]) + [None, None]
            kw["response_window"] = (w[0], w[1])
        if "views" in kw:
            bad = [v for v in kw["views"] if v not in VIEW_NAMES]
            if bad:
                raise ValueError(f"report.views: unknown view(s) {bad}; use {VIEW_NAMES}")
            kw["views"] = tuple(kw["views"])
        return cls(**kw)

    def window(self, times) -> tuple[float, float]:
        """The response window (s) on a time axis: defaults resolved, inside the epoch.

        Parameters
        ----------
        times : ndarray, shape (n_times,)
            Seconds.

        Returns
        -------
        (float, float)
            Start and end; the post-stimulus part of the epoch if the configured
            window holds no sample.
        """
        t = np.asarray(times, float)
        a, b = self.response_window
        a = 0.05 if a is None else float(a)
        b = float(t[-1]) - END_MARGIN if b is None else float(b)
        a, b = max(a, 0.0), min(b, float(t[-1]))
        if not np.any((t >= a) & (t <= b)):
            a, b = 0.0, float(t[-1])
        return a, b
