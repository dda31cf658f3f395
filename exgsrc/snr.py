"""Signal-to-noise ratio of evoked data as seen by an inverse operator.

Equal to MNE-Python's ``mne.minimum_norm.estimate_snr``: ``snr`` is the
root-mean-square of the whitened data over the effective number of channels;
``snr_est`` is the SNR implied by the largest regularisation whose whitened
residual (unregularised minus regularised fit) still passes a chi-squared test
at p = 0.001.
"""

from __future__ import annotations

import numpy as np
from scipy.special import chdtri

from .inverse import _check_data, _check_nave, _pick_data_channels
from .linalg import whitener_from_eig

__all__ = ["estimate_snr"]


def estimate_snr(data: np.ndarray, inv, nave: int = 1, ch_names=None):
    """Estimate the SNR as a function of time.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        Evoked data in V (any EEG reference).
    inv : InverseOperator
        Inverse operator (the method-independent one).
    nave : int | float
        Number of averages in ``data`` (noise covariance scaled by 1/nave); a
        float is the effective nave of a contrast
        (:func:`exgsrc.preprocessing.combine_evoked`).
    ch_names : sequence of str | None
        Names of the data rows, used to reorder to the operator's channels.

    Returns
    -------
    snr : ndarray, shape (n_times,)
        ``sqrt(sum(whitened data**2) / rank)`` (dimensionless).
    snr_est : ndarray, shape (n_times,)
        ``1 / sqrt(lambda2_est)``; 0 where ``snr <= 1``.
    """
    nave = _check_nave(nave)
    data = _pick_data_channels(np.asarray(data), inv.ch_names, ch_names, axis=0)
    data = _check_data(data, inv.n_channels)
    scale = float(inv.nave) / nave
    whitener = whitener_from_eig(inv.noise_eig * scale, inv.noise_eigvec)
    data_white = whitener @ (inv.proj @ data)
    data_white_ef = inv.eigen_fields @ data_white
    n_eff = int(inv.rank)
    n_times = data.shape[1]
    snr = np.sum(data_white**2, axis=0) / n_eff

    lambda2_est = np.full(n_times, 10.0)
    remaining = np.ones(n_times, bool)
    low = snr <= 1
    lambda2_est[low] = np.inf
    remaining[low] = False

    lambda_mult = 0.99
    sing = inv.sing
    sing2 = (sing * sing)[:, None]
    val = chdtri(n_eff, 1e-3)  # chi2.isf(1e-3, n_eff), without importing scipy.stats
    for _ in range(1000):
        if not remaining.any():
            break
        f = sing2 / (sing2 + lambda2_est[None, remaining])
        f[sing == 0] = 0
        ew = data_white_ef[:, remaining] * (1.0 - f)
        err = np.sum(ew * ew, axis=0)
        remaining[np.where(remaining)[0][err < val]] = False
        if not remaining.any():
            break
        lambda2_est[remaining] *= lambda_mult
    with np.errstate(divide="ignore"):
        snr_est = 1.0 / np.sqrt(lambda2_est)
    return np.sqrt(snr), snr_est
