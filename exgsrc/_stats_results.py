"""Result types of :mod:`exgsrc.stats` and their xarray form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _time_source_coords(n_times, n_sources, times, src):
    coords = {"source": ("source", np.arange(n_sources))}
    if times is None:
        coords["time"] = ("time", np.arange(n_times), {"long_name": "time index"})
    else:
        times = np.asarray(times, float)
        if times.shape != (n_times,):
            raise ValueError(f"times must have shape ({n_times},), got {times.shape}")
        coords["time"] = ("time", times, {"units": "s", "long_name": "time"})
    if src is not None:
        if src.n_sources != n_sources:
            raise ValueError(f"src has {src.n_sources} sources, the statistics {n_sources}")
        for i, ax in enumerate("xyz"):
            coords[ax] = ("source", src.pos[:, i], {"units": "m", "long_name": f"source {ax}"})
    return coords


_TS = ("time", "source")


def _to_dataset(result, description, variables, times, src, *, n_clusters=None, **attrs):
    """The common xarray form of a test result (``to_xarray`` of the result types).

    Parameters
    ----------
    result : ClusterTestResult | TFCETestResult | TmaxTestResult
        Gives ``t_obs`` (n_times, n_sources) and the attributes common to all tests
        (``tail``, ``n_permutations``, ``exhaustive``, ``seed``).
    description : str
        The ``test`` attribute.
    variables : dict of str -> (dims, ndarray, str)
        Variables after ``t_obs``: dims, values and ``long_name`` (all
        dimensionless, ``units="1"``).
    times : array-like, shape (n_times,) | None
        Time of each sample in seconds (default: sample index).
    src : SourceSpace | None
        Adds source coordinates ``x``, ``y``, ``z`` (m).
    n_clusters : int | None
        If given, a ``cluster`` coordinate numbered ``1 .. n_clusters``.
    **attrs
        The test's own parameters (after the common ones).

    Returns
    -------
    ds : xarray.Dataset
    """
    import xarray as xr

    if result.t_obs.ndim != 2:
        raise ValueError(
            f"to_xarray needs (n_times, n_sources) maps, got shape {result.t_obs.shape}"
        )
    n_times, n_sources = result.t_obs.shape
    coords = _time_source_coords(n_times, n_sources, times, src)
    if n_clusters is not None:
        coords["cluster"] = ("cluster", np.arange(1, n_clusters + 1))
    data_vars = {
        "t_obs": (_TS, result.t_obs, {"units": "1", "long_name": "one-sample t across subjects"})
    }
    for name, (dims, values, long_name) in variables.items():
        data_vars[name] = (dims, values, {"units": "1", "long_name": long_name})
    common = {
        "test": description,
        "tail": result.tail,
        "n_permutations": result.n_permutations,
        "exhaustive": int(result.exhaustive),
        "seed": result.seed,
    }
    return xr.Dataset(data_vars, coords=coords, attrs={**common, **attrs})


@dataclass(frozen=True)
class ClusterTestResult:
    """Result of :func:`cluster_permutation_test`.

    Parameters
    ----------
    t_obs : ndarray, shape (n_times, n_sources)
        Observed t-values (dimensionless).
    cluster_labels : ndarray of int32, shape (n_times, n_sources)
        0 outside clusters, ``k`` (1-based) inside cluster ``k``, whose
        statistic and p-value are ``cluster_stats[k - 1]``,
        ``cluster_p_values[k - 1]``. Clusters are ordered as MNE orders them:
        positive before negative, then by their first (time, source) point.
    cluster_stats : ndarray, shape (n_clusters,)
        Cluster mass: sum of ``sign(t) * |t|**t_power`` over the cluster
        (the sum of t for ``t_power=1``).
    cluster_p_values : ndarray, shape (n_clusters,)
        Fraction of ``h0`` at least as extreme as the cluster's statistic.
    h0 : ndarray, shape (n_permutations,)
        Null distribution of the maximum cluster statistic: the observed
        maximum first (|max| for tail 0), then one value per sign flip (the
        cluster statistic of largest magnitude, 0 if no cluster). Empty when
        the observed data have no cluster (no permutations are run).
    n_permutations : int
        ``len(h0)``: sign flips used + 1 (0 if no cluster).
    exhaustive : bool
        True if every sign flip was enumerated (exact test).
    tail : int
        0 two-tailed, 1 upper, -1 lower.
    threshold : float
        Cluster-forming t threshold.
    seed : int
        Seed of the random flips (unused when ``exhaustive``).
    max_step : int
        Time neighbourhood (samples) of a source.
    t_power : float
        Power of |t| in the cluster statistic.
    sigma : float
        "Hat" variance regularisation of the t-values.
    sigma_method : str
        "relative" or "absolute".
    """

    t_obs: np.ndarray
    cluster_labels: np.ndarray
    cluster_stats: np.ndarray
    cluster_p_values: np.ndarray
    h0: np.ndarray
    n_permutations: int
    exhaustive: bool
    tail: int
    threshold: float
    seed: int
    max_step: int = 1
    t_power: float = 1.0
    sigma: float = 0.0
    sigma_method: str = "relative"

    @property
    def n_clusters(self) -> int:
        """Number of clusters in the observed data."""
        return int(self.cluster_stats.size)

    def cluster_mask(self, k: int) -> np.ndarray:
        """Boolean ``(n_times, n_sources)`` mask of cluster ``k`` (1-based).

        Parameters
        ----------
        k : int
            Cluster number, ``1 .. n_clusters``.

        Returns
        -------
        mask : ndarray of bool, shape (n_times, n_sources)
        """
        if not 1 <= k <= self.n_clusters:
            raise ValueError(f"cluster number must be in 1..{self.n_clusters}, got {k}")
        return self.cluster_labels == k

    def significant_mask(self, alpha: float = 0.05) -> np.ndarray:
        """Points that belong to a cluster with ``p < alpha``.

        Parameters
        ----------
        alpha : float
            Family-wise error rate.

        Returns
        -------
        mask : ndarray of bool, shape (n_times, n_sources)
        """
        good = np.flatnonzero(self.cluster_p_values < alpha) + 1
        return np.isin(self.cluster_labels, good)

    def to_xarray(self, times=None, src=None):
        """Convert to an :class:`xarray.Dataset` (netCDF-ready).

        Parameters
        ----------
        times : array-like, shape (n_times,) | None
            Time of each sample in seconds (default: sample index).
        src : SourceSpace | None
            Adds source coordinates ``x``, ``y``, ``z`` (m).

        Returns
        -------
        ds : xarray.Dataset
            ``t_obs`` and ``cluster_label`` with dims ``(time, source)``;
            ``cluster_stat`` and ``cluster_p_value`` with dim ``cluster``
            (numbered from 1, as in ``cluster_label``); ``h0`` with dim
            ``permutation``; the test's parameters as attributes.
        """
        variables = {
            "cluster_label": (_TS, self.cluster_labels, "cluster number (0 = outside clusters)"),
            "cluster_stat": (
                "cluster",
                self.cluster_stats,
                f"cluster mass (sum of sign(t)|t|^{self.t_power:g})",
            ),
            "cluster_p_value": (
                "cluster",
                self.cluster_p_values,
                "cluster p-value (family-wise, permutation)",
            ),
            "h0": (
                "permutation",
                self.h0,
                "maximum cluster statistic per permutation (observed first)",
            ),
        }
        return _to_dataset(
            self,
            "spatio-temporal cluster permutation test (sign flips)",
            variables,
            times,
            src,
            n_clusters=self.n_clusters,
            threshold=self.threshold,
            max_step=self.max_step,
            t_power=self.t_power,
            sigma=self.sigma,
            sigma_method=self.sigma_method,
        )


@dataclass(frozen=True)
class TFCETestResult:
    """Result of :func:`tfce_permutation_test`.

    Parameters
    ----------
    t_obs : ndarray, shape (n_times, n_sources)
        Observed t-values (dimensionless).
    tfce : ndarray, shape (n_times, n_sources)
        Enhanced statistic with the sign of ``t_obs`` (MNE's returned
        ``t_obs`` for a TFCE threshold), dimensionless.
    p_values : ndarray, shape (n_times, n_sources)
        Per-point family-wise p-values: fraction of ``h0`` >= ``|tfce|``.
    h0 : ndarray, shape (n_permutations,)
        Maximum |TFCE| per permutation, the observed one first.
    n_permutations : int
        ``len(h0)``.
    exhaustive : bool
        True if every sign flip was enumerated.
    tail : int
        0, 1 or -1.
    start, step : float
        TFCE threshold ladder (``numpy.arange(start, max|t|, step)``).
    e_power, h_power : float
        Extent and height exponents E and H.
    seed : int
        Seed of the random flips.
    max_step : int
        Time neighbourhood (samples) of a source.
    sigma : float
        "Hat" variance regularisation.
    sigma_method : str
        "relative" or "absolute".
    """

    t_obs: np.ndarray
    tfce: np.ndarray
    p_values: np.ndarray
    h0: np.ndarray
    n_permutations: int
    exhaustive: bool
    tail: int
    start: float
    step: float
    e_power: float
    h_power: float
    seed: int
    max_step: int = 1
    sigma: float = 0.0
    sigma_method: str = "relative"

    def significant_mask(self, alpha: float = 0.05) -> np.ndarray:
        """Points with ``p < alpha``.

        Parameters
        ----------
        alpha : float
            Family-wise error rate.

        Returns
        -------
        mask : ndarray of bool, shape (n_times, n_sources)
        """
        return self.p_values < alpha

    def to_xarray(self, times=None, src=None):
        """Convert to an :class:`xarray.Dataset` (netCDF-ready).

        Parameters
        ----------
        times : array-like, shape (n_times,) | None
            Time of each sample in seconds (default: sample index).
        src : SourceSpace | None
            Adds source coordinates ``x``, ``y``, ``z`` (m).

        Returns
        -------
        ds : xarray.Dataset
            ``t_obs``, ``tfce`` and ``p_value`` with dims ``(time, source)``,
            ``h0`` with dim ``permutation``; parameters as attributes.
        """
        variables = {
            "tfce": (_TS, self.tfce, "TFCE score, sign of t"),
            "p_value": (_TS, self.p_values, "TFCE p-value (family-wise, permutation)"),
            "h0": ("permutation", self.h0, "maximum TFCE score per permutation (observed first)"),
        }
        return _to_dataset(
            self,
            "threshold-free cluster enhancement permutation test (sign flips)",
            variables,
            times,
            src,
            start=self.start,
            step=self.step,
            e_power=self.e_power,
            h_power=self.h_power,
            max_step=self.max_step,
            sigma=self.sigma,
            sigma_method=self.sigma_method,
        )


@dataclass(frozen=True)
class TmaxTestResult:
    """Result of :func:`tmax_permutation_test`.

    Parameters
    ----------
    t_obs : ndarray, shape X.shape[1:]
        Observed t-values (dimensionless).
    p_values : ndarray, shape X.shape[1:]
        Family-wise p-values from the maximum |t| over all points.
    h0 : ndarray, shape (n_permutations,)
        Maximum |t| per permutation, the observed one first.
    n_permutations : int
        ``len(h0)``.
    exhaustive : bool
        True if every sign flip was enumerated.
    tail : int
        0, 1 or -1.
    seed : int
        Seed of the random flips.
    """

    t_obs: np.ndarray
    p_values: np.ndarray
    h0: np.ndarray
    n_permutations: int
    exhaustive: bool
    tail: int
    seed: int

    def to_xarray(self, times=None, src=None):
        """Convert to an :class:`xarray.Dataset` (maps of shape (n_times, n_sources)).

        Parameters
        ----------
        times : array-like, shape (n_times,) | None
            Time of each sample in seconds (default: sample index).
        src : SourceSpace | None
            Adds source coordinates ``x``, ``y``, ``z`` (m).

        Returns
        -------
        ds : xarray.Dataset
            ``t_obs`` and ``p_value`` with dims ``(time, source)``, ``h0``
            with dim ``permutation``.
        """
        variables = {
            "p_value": (_TS, self.p_values, "max-|t| corrected p-value (family-wise)"),
            "h0": ("permutation", self.h0, "maximum |t| per permutation (observed first)"),
        }
        return _to_dataset(self, "max-|t| permutation test (sign flips)", variables, times, src)
