"""Readers of each file kind back into exgsrc objects.

Each reader imports the module of its type when called: a workflow job pays only
for the types it reads (the covariance and inverse modules import SciPy, which
a job that reads epochs or a montage does not need).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._format import CONTRAST_ATTRS, open_checked

if TYPE_CHECKING:
    from ..containers import Epochs, Evoked
    from ..covariance import NoiseCov
    from ..forward import Forward, SphereModel
    from ..inverse import InverseOperator, SourceEstimate
    from ..source_space import SourceSpace

__all__ = [
    "load_cov",
    "load_epochs",
    "load_evoked",
    "load_forward",
    "load_inverse",
    "load_montage",
    "load_source_space",
    "load_sphere",
    "load_stc",
    "used_channels",
]


def load_source_space(path) -> SourceSpace:
    """Load a :class:`exgsrc.source_space.SourceSpace` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    SourceSpace
    """
    from ..source_space import SourceSpace

    return SourceSpace.from_xarray(open_checked(path))


def load_forward(path) -> Forward:
    """Load a :class:`exgsrc.forward.Forward` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Forward
    """
    from ..forward import Forward

    return Forward.from_xarray(open_checked(path))


def load_cov(path) -> NoiseCov:
    """Load a :class:`exgsrc.covariance.NoiseCov` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    NoiseCov
    """
    from ..covariance import NoiseCov

    return NoiseCov.from_xarray(open_checked(path))


def load_inverse(path) -> InverseOperator:
    """Load a :class:`exgsrc.inverse.InverseOperator` from netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    InverseOperator
    """
    from ..inverse import InverseOperator

    return InverseOperator.from_xarray(open_checked(path))


def load_stc(path, src=None) -> SourceEstimate:
    """Load a :class:`exgsrc.inverse.SourceEstimate` from netCDF.

    Parameters
    ----------
    path : path-like
    src : SourceSpace | None
        The matching source space; default: a discrete one built from the
        file's ``x, y, z`` coordinates.

    Returns
    -------
    SourceEstimate
    """
    from ..inverse import SourceEstimate
    from ..source_space import discrete_source_space

    ds = open_checked(path)
    if src is None:
        src = discrete_source_space(np.stack([ds[c].values for c in "xyz"], axis=1))
    return SourceEstimate.from_xarray(ds, src)


def load_montage(path):
    """Load the montage dataset written by the workflow's montage step.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    xarray.Dataset
        Variables ``pos`` (channel, xyz) in m; coordinates ``ch_type``,
        ``status``, ``used`` and ``excluded_reason`` on ``channel``.
    """
    return open_checked(path)


def used_channels(montage) -> list[str]:
    """Channels of a montage dataset used for source imaging (good EEG with a position).

    Parameters
    ----------
    montage : xarray.Dataset
        As returned by :func:`load_montage`.

    Returns
    -------
    list of str
    """
    used = montage["used"].values.astype(bool)
    return [str(c) for c, u in zip(montage["channel"].values, used, strict=True) if u]


def load_sphere(path) -> SphereModel:
    """Load a :class:`exgsrc.forward.SphereModel` from the head-model netCDF.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    SphereModel
    """
    from ..forward import SphereModel

    ds = open_checked(path)
    mu = ds["mu"].values if "mu" in ds else None
    lam = ds["lambda_"].values if "lambda_" in ds else None
    return SphereModel(
        radii=tuple(float(r) for r in ds["radii"].values),
        conductivities=tuple(float(s) for s in ds["conductivities"].values),
        center=tuple(float(c) for c in np.asarray(ds["center"].values)),
        mu=None if mu is None else np.asarray(mu),
        lambda_=None if lam is None else np.asarray(lam),
    )


def load_epochs(path) -> Epochs:
    """Rebuild :class:`exgsrc.containers.Epochs` from the workflow's ``epo.nc``.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Epochs
    """
    from ..containers import Epochs

    ds = open_checked(path)
    n = ds.sizes["channel"]
    baseline = ds.attrs.get("baseline")
    return Epochs(
        data=np.asarray(ds["epochs"].values, float),
        times=np.asarray(ds["time"].values, float),
        labels=tuple(str(c) for c in ds["condition"].values),
        ch_names=tuple(str(c) for c in ds["channel"].values),
        ch_types=("eeg",) * n,
        bads=(),
        sfreq=float(ds.attrs["sfreq"]),
        events=np.asarray(ds["event_sample"].values, int),
        selection=np.asarray(ds["selection"].values, int),
        drop_log=tuple(tuple(x) for x in ds.attrs.get("drop_log", [])),
        baseline=None if baseline is None or isinstance(baseline, str) else tuple(baseline),
        meta={k: ds.attrs[k] for k in ("condition_codes", "events_column") if k in ds.attrs},
    )


def load_evoked(path) -> Evoked:
    """Rebuild :class:`exgsrc.containers.Evoked` from the workflow's ``ave.nc``.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Evoked
        ``nave`` a float for a contrast; ``meta``: its :data:`CONTRAST_ATTRS`.
    """
    from ..containers import Evoked

    ds = open_checked(path)
    names = tuple(str(c) for c in ds["channel"].values)
    nave = float(ds.attrs["nave"])
    return Evoked(
        data=np.asarray(ds["evoked"].values, float),
        times=np.asarray(ds["time"].values, float),
        ch_names=names,
        nave=int(nave) if nave.is_integer() else nave,
        condition=str(ds.attrs["condition"]),
        ch_types=("eeg",) * len(names),
        bads=(),
        meta={k: ds.attrs[k] for k in CONTRAST_ATTRS if k in ds.attrs},
    )
