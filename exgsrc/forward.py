"""EEG forward models on concentric spheres (Berg & Scherg approximation).

Physics
-------
For a current dipole inside a sphere made of ``N`` concentric shells, the
scalp potential is the Legendre series (e.g. Zhang 1995, Phys. Med. Biol. 40)

.. math::

    V(\\mathbf r) = \\frac{1}{4\\pi\\sigma_N R^2} \\sum_{n\\ge1} f_n \\frac{2n+1}{n} b^{n-1}
        \\left[n\\,q_r P_n(\\cos\\gamma) + P_n'(\\cos\\gamma)
        (\\mathbf q\\cdot\\hat{\\mathbf r} - \\cos\\gamma\\, q_r)\\right]

with ``b = |r_q| / R`` the dipole eccentricity, ``q_r`` the radial moment,
``gamma`` the angle between dipole and electrode and ``f_n`` the layer factor
(``f_n == 1`` for a homogeneous sphere). :func:`sphere_potential_exact`
evaluates it.

Berg & Scherg (1994, Electroencephalogr. Clin. Neurophysiol. 90:58-64)
replace the series by the potential of ``J = 3`` dipoles in a *homogeneous*
sphere, dipole ``j`` moved to ``mu_j r_q`` and scaled by ``lambda_j``, so that
``sum_j lambda_j mu_j**(n-1) ~= f_n``. The homogeneous-sphere potential has a
closed form, so the forward costs a few dozen flops per (electrode, source)
pair. This module evaluates it fully vectorised: one BLAS product gives all
``r_e . r_q``, everything else is in-place element-wise work on cache-sized
``(n_ch, n_block)`` blocks of sources; the three Cartesian moments share all
scalar work because the potential is ``A r_q + B r_e`` for per-pair scalars.
On 256 channels x 10242 sources this is 2-3x faster than MNE-Python's numba
kernel (``benchmarks/bench_forward.py``).

Which fit, and why
------------------
The criterion is MNE-Python's (``make_sphere_model``): weighted least squares
of ``sum_j lambda_j mu_j**(n-1)`` against ``f_n`` for ``n = 2..200``, weights
``sqrt((2n+1)(3n+1)/n) * (r_1/r_N)**(n-1)`` (the last one 0), under
``sum_j lambda_j = f_1`` (the dipolar term is exact). For fixed ``mu`` the
``lambda`` are linear (variable projection), leaving 3 unknowns.

By default (``method="cobyla"``) we minimise it exactly as MNE does: COBYLA
from ``mu = 0`` with initial step 0.5 and final step 1e-4, with the series
coefficients and the projected residual computed by the same floating-point
operations, so that our ``mu``/``lambda_`` equal MNE's to round-off. We do
this because the criterion is very flat along the smallest ``mu`` (moving it
by 5e-3 changes the cost by 3e-4 relative), so COBYLA's stopping point is not
a well-defined number to 1e-4: a one-ulp change of the relative radii moves
MNE's own ``mu_3`` by 4e-4. Matching MNE therefore needs the same run, not a
"better" optimiser, and matching MNE keeps our lead fields interchangeable
with MNE's. ``method="lsq"`` instead solves the criterion to round-off with
bounded least squares from several starts; it finds costs at least as low,
and for some shell sets a much better minimum (default 3-shell model:
residual variance 9.5e-7 vs 1.05e-4, worst error vs the exact series at 95 %
eccentricity 0.2 % vs 0.9 %). ``lambda_`` is stored as MNE stores it: already
divided by the outermost conductivity (Ohm m).

Electrodes off the scalp
------------------------
As in MNE-Python, electrode positions are used as given, *not* projected
onto the scalp sphere: the homogeneous-sphere formula is evaluated at each
electrode's own distance from the centre (which amounts to treating every
electrode as lying on a sphere of its own radius). MNE evaluates every
electrode wherever it is (``_do_eeg_spherepot_coil`` has no test on the
electrode radius; ``make_forward_solution`` checks only MEG sensors), so we
do too: on high-density nets many electrodes lie well off a sphere fitted to
the cranium (GSN-HydroCel-256 on MNE's fitted sphere: temporal electrodes
17 mm inside, i.e. inside the innermost shell; jaw and neck electrodes up to
25 mm outside). Electrodes inside the innermost shell are named in
``Forward.meta["warnings"]``; only an electrode at the centre or on an
equivalent dipole (a non-finite potential) is an error.
:func:`project_to_sphere` is the alternative of FieldTrip and Brainstorm:
move every electrode radially onto the scalp sphere first.

Fitting the sphere
------------------
:func:`fit_scalp_sphere` (and :meth:`SphereModel.fit`) fit centre and radius
by linear least squares to the electrodes, leaving out by default the points
low on the face as MNE-Python's ``fit_sphere_to_headshape`` does (``z < 0``
and ``y > 0`` in a fiducial-defined RAS head frame, with MNE's 1 um margin):
nose, cheek and jaw electrodes would otherwise drag the sphere down and
forward. ``exclude="below"`` also leaves out the neck (every point below the
fiducial plane). The points used and left out are recorded
(:class:`SphereFit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from .scalp import SphereFit, electrode_array, fit_scalp_sphere
from .source_space import SourceSpace

__all__ = [
    "Forward",
    "SphereModel",
    "make_sphere_forward",
    "make_sphere_forward_free",
    "sphere_potential_exact",
    "sphere_potential_berg_scherg",
    "layer_coefficients",
    "fit_berg_scherg",
]

_DEFAULT_RADII = (0.067, 0.070, 0.075)
_DEFAULT_SIGMAS = (0.33, 0.0042, 0.33)
_MNE_REL_RADII = (0.90, 0.92, 0.97, 1.0)
_MNE_SIGMAS = (0.33, 1.0, 0.004, 0.33)
_BS_NTERMS = 200  # terms of the series the Berg-Scherg fit matches (as MNE)
_BS_NFIT = 3  # number of equivalent dipoles (as MNE)
# MNE-Python's margin in its face rule (get_fitting_dig): z < -1 um and y > 1 um


# ----------------------------------------------------------------------------
# Sphere model


class _hybridmethod:
    """Method callable on the class (self=None) or on an instance."""

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj, cls):
        func = self.func

        def bound(*args, **kwargs):
            return func(cls, obj, *args, **kwargs)

        bound.__doc__ = func.__doc__
        bound.__name__ = func.__name__
        return bound


@dataclass(frozen=True)
class SphereModel:
    """Concentric-sphere head model.

    Parameters
    ----------
    radii : sequence of float, length n_shells
        Shell radii in metres, innermost first, strictly increasing. The
        default is the 3-shell brain/skull/scalp model (0.067, 0.070, 0.075).
    conductivities : sequence of float, length n_shells
        Conductivity of each shell in S/m (default 0.33, 0.0042, 0.33).
    center : array-like, shape (3,)
        Common centre in metres.
    mu : array-like, shape (n_fit,) | None
        Berg & Scherg eccentricity factors (dimensionless). ``None``: fitted
        on demand (see :meth:`with_berg_scherg`).
    lambda_ : array-like, shape (n_fit,) | None
        Berg & Scherg magnitudes divided by the outermost conductivity
        (Ohm m), the convention of MNE-Python's ``sphere["lambda"]``.
    """

    radii: tuple = _DEFAULT_RADII
    conductivities: tuple = _DEFAULT_SIGMAS
    center: tuple = (0.0, 0.0, 0.0)
    mu: tuple | None = None
    lambda_: tuple | None = None
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        radii = np.atleast_1d(np.asarray(self.radii, float))
        sig = np.atleast_1d(np.asarray(self.conductivities, float))
        if radii.ndim != 1 or len(radii) == 0:
            raise ValueError(f"radii must be a non-empty 1-D sequence, got {self.radii!r}")
        if sig.shape != radii.shape:
            raise ValueError(
                f"conductivities (length {sig.size}) must match radii (length {radii.size})"
            )
        for k, r in enumerate(radii):
            if not np.isfinite(r) or r <= 0:
                raise ValueError(f"radii[{k}] must be positive and finite (m), got {r}")
        for k, s in enumerate(sig):
            if not np.isfinite(s) or s <= 0:
                raise ValueError(f"conductivities[{k}] must be positive and finite (S/m), got {s}")
        if np.any(np.diff(radii) <= 0):
            k = int(np.flatnonzero(np.diff(radii) <= 0)[0]) + 1
            raise ValueError(
                f"radii must be strictly increasing (innermost first); radii[{k}]={radii[k]} "
                f"<= radii[{k - 1}]={radii[k - 1]}"
            )
        c = np.asarray(self.center, float)
        if c.shape != (3,) or not np.all(np.isfinite(c)):
            raise ValueError(f"center must be 3 finite numbers (m), got {self.center!r}")
        object.__setattr__(self, "radii", tuple(radii.tolist()))
        object.__setattr__(self, "conductivities", tuple(sig.tolist()))
        object.__setattr__(self, "center", tuple(c.tolist()))
        if (self.mu is None) != (self.lambda_ is None):
            raise ValueError("mu and lambda_ must be given together (or both None)")
        if self.mu is not None:
            mu = np.atleast_1d(np.asarray(self.mu, float))
            lam = np.atleast_1d(np.asarray(self.lambda_, float))
            if mu.ndim != 1 or mu.shape != lam.shape or len(mu) == 0:
                raise ValueError(
                    f"mu and lambda_ must be 1-D of equal length, got {mu.shape} and {lam.shape}"
                )
            if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(lam))):
                raise ValueError("mu and lambda_ must be finite")
            if np.any(np.abs(mu) > 1) or np.any(mu == 0):
                raise ValueError(f"mu must lie in [-1, 0) U (0, 1], got {mu.tolist()}")
            object.__setattr__(self, "mu", tuple(mu.tolist()))
            object.__setattr__(self, "lambda_", tuple(lam.tolist()))

    # -- derived quantities ---------------------------------------------------
    @property
    def n_shells(self) -> int:
        """Number of shells."""
        return len(self.radii)

    @property
    def scalp_radius(self) -> float:
        """Outermost radius (m)."""
        return float(self.radii[-1])

    @property
    def inner_radius(self) -> float:
        """Innermost radius (m); sources must lie strictly inside it."""
        return float(self.radii[0])

    @property
    def relative_radii(self) -> np.ndarray:
        """Radii divided by the scalp radius, shape (n_shells,).

        If the model was built from relative radii (:meth:`from_relative`,
        :meth:`mne_default`, :meth:`fit`), those exact numbers are returned;
        otherwise ratios within a few ulps of a 12-decimal number are snapped
        to it (so ``radii = R * (0.9, 0.92, ...)`` gives exactly 0.92). The
        Berg & Scherg fit, like MNE's COBYLA run, is sensitive to the last bit
        of its inputs.
        """
        rel = np.asarray(self.radii) / self.radii[-1]
        given = self.meta.get("relative_radii")
        if given is not None and len(given) == len(rel) and np.allclose(given, rel, rtol=1e-12):
            return np.asarray(given, float)
        # undo pure scaling round-off (0.09 * 0.92 / 0.09 -> 0.92), leave other values
        snapped = np.round(rel, 12)
        close = np.abs(snapped - rel) <= 8 * np.spacing(rel)
        return np.where(close, snapped, rel)

    # -- constructors ---------------------------------------------------------
    @classmethod
    def from_relative(
        cls, relative_radii, conductivities, head_radius: float, center=(0.0, 0.0, 0.0)
    ) -> SphereModel:
        """Build a model from relative radii and a scalp radius.

        Parameters
        ----------
        relative_radii : sequence of float, length n_shells
            Radii relative to the scalp (innermost first); divided by the last.
        conductivities : sequence of float, length n_shells
            S/m.
        head_radius : float
            Scalp radius in metres.
        center : array-like, shape (3,)
            Centre in metres.

        Returns
        -------
        sphere : SphereModel
        """
        rel = np.atleast_1d(np.asarray(relative_radii, float))
        head_radius = float(head_radius)
        if not np.isfinite(head_radius) or head_radius <= 0:
            raise ValueError(f"head_radius must be positive (m), got {head_radius}")
        if len(rel) and (not np.isfinite(rel[-1]) or rel[-1] <= 0):
            raise ValueError(f"relative_radii[-1] must be positive, got {rel[-1]}")
        rel = rel / rel[-1] if len(rel) else rel
        return cls(
            radii=tuple(head_radius * rel),
            conductivities=tuple(np.atleast_1d(conductivities)),
            center=tuple(np.asarray(center, float)),
            meta={"relative_radii": rel.tolist()},
        )

    @classmethod
    def mne_default(cls, head_radius: float = 0.09, center=(0.0, 0.0, 0.04)) -> SphereModel:
        """The 4-shell model of ``mne.make_sphere_model()`` (not yet fitted).

        Parameters
        ----------
        head_radius : float
            Scalp radius in metres.
        center : array-like, shape (3,)
            Centre in metres (MNE's ``r0``).

        Returns
        -------
        sphere : SphereModel
            Relative radii 0.90, 0.92, 0.97, 1.0 times ``head_radius``;
            conductivities 0.33, 1.0, 0.004, 0.33 S/m.
        """
        return cls.from_relative(_MNE_REL_RADII, _MNE_SIGMAS, head_radius, center)

    @_hybridmethod
    def fit(cls, self, electrodes, exclude: str | None = "face", ch_names=None) -> SphereModel:
        """Fit centre and scalp radius to electrode positions.

        :func:`fit_scalp_sphere` (linear least squares; by default without
        the face electrodes, MNE-Python's rule). The shells keep their
        relative radii and conductivities: those of the instance when called
        on one (``sphere.fit(el)``), else those of the default 3-shell model
        (``SphereModel.fit(el)``). Any Berg & Scherg parameters are kept (they
        depend on relative radii and conductivities only).

        Parameters
        ----------
        electrodes : array-like, shape (n_channels, 3) | Montage
            Electrode positions in metres, in a fiducial-defined RAS head
            frame (at least 4 kept by ``exclude``, not coplanar).
        exclude : {"face", "below"} | None
            Which electrodes to leave out, see :func:`fit_scalp_sphere`.
        ch_names : sequence of str | None
            Names for the record (default: from a Montage, else ``EEG001...``).

        Returns
        -------
        sphere : SphereModel
            ``center`` and ``radii`` scaled so that ``scalp_radius == R``;
            the :class:`SphereFit` (electrodes used and left out) in
            :attr:`fit_result`.
        """
        result = fit_scalp_sphere(electrodes, ch_names, exclude)
        template = self if self is not None else cls()
        rel = template.relative_radii
        meta = dict(template.meta, relative_radii=rel.tolist(), sphere_fit=result)
        return replace(template, radii=tuple(result.radius * rel), center=result.center, meta=meta)

    @property
    def fit_result(self) -> SphereFit | None:
        """The :class:`SphereFit` this model came from (``None`` if not fitted)."""
        return self.meta.get("sphere_fit")

    def with_berg_scherg(self, method: str = "cobyla") -> SphereModel:
        """Return a copy with fitted Berg & Scherg ``mu`` and ``lambda_``.

        Parameters
        ----------
        method : {"cobyla", "lsq"}
            See :func:`fit_berg_scherg`; ``"cobyla"`` reproduces MNE-Python.

        Returns
        -------
        sphere : SphereModel
            Three equivalent dipoles, ``mu`` sorted in decreasing order.
        """
        mu, lam, rv = _fit_cached(tuple(self.relative_radii), self.conductivities, method)
        meta = dict(self.meta, berg_scherg_rv=rv, berg_scherg_method=method)
        return replace(self, mu=mu, lambda_=lam, meta=meta)

    def _fitted(self) -> SphereModel:
        return self if self.mu is not None else self.with_berg_scherg()

    def to_attrs(self) -> dict:
        """Parameters as a flat dict for netCDF attributes (lists of floats)."""
        d = {
            "sphere_radii": list(self.radii),
            "sphere_conductivities": list(self.conductivities),
            "sphere_center": list(self.center),
        }
        if self.mu is not None:
            d["sphere_mu"] = list(self.mu)
            d["sphere_lambda"] = list(self.lambda_)
        return d

    @classmethod
    def from_attrs(cls, attrs) -> SphereModel:
        """Inverse of :meth:`to_attrs`."""
        mu = attrs.get("sphere_mu")
        lam = attrs.get("sphere_lambda")
        return cls(
            radii=tuple(np.atleast_1d(attrs["sphere_radii"])),
            conductivities=tuple(np.atleast_1d(attrs["sphere_conductivities"])),
            center=tuple(np.atleast_1d(attrs["sphere_center"])),
            mu=None if mu is None else tuple(np.atleast_1d(mu)),
            lambda_=None if lam is None else tuple(np.atleast_1d(lam)),
        )


# ----------------------------------------------------------------------------
# Exact series and Berg & Scherg fit


def layer_coefficients(relative_radii, conductivities, n_terms: int) -> np.ndarray:
    """Layer factors ``f_n`` of the multi-shell series, n = 1..n_terms.

    ``f_n`` multiplies the n-th term of the homogeneous-sphere series (with
    the outermost conductivity) to give the layered sphere; it is 1 for a
    homogeneous sphere. Computed by the 2x2 transfer-matrix recursion across
    the boundaries, vectorised over ``n``.

    Parameters
    ----------
    relative_radii : array-like, shape (n_shells,)
        Radii divided by the outermost radius, innermost first.
    conductivities : array-like, shape (n_shells,)
        S/m, innermost first.
    n_terms : int
        Number of terms.

    Returns
    -------
    f : ndarray, shape (n_terms,)
    """
    rel = np.asarray(relative_radii, float)
    sig = np.asarray(conductivities, float)
    n = np.arange(1, n_terms + 1, dtype=float)
    n_layers = len(rel)
    if n_layers < 2:
        return np.ones(n_terms)
    c1 = sig[:-1] / sig[1:]  # sigma_k / sigma_{k+1}, per boundary
    c2 = c1 - 1.0
    # rel_k ** (2n + 1) by repeated multiplication (bitwise as MNE-Python)
    steps = np.empty((n_terms + 1, n_layers - 1))
    steps[0] = rel[:-1]
    steps[1:] = rel[:-1] ** 2
    cr = np.cumprod(steps, axis=0)[1:]  # (n_terms, n_layers - 1)
    n1 = n + 1.0
    # boundary transfer matrices multiplied from the outermost boundary inward,
    # stacked over n (the same floating-point operations as MNE-Python's 2x2
    # products, so f_n agrees bitwise)
    M = np.broadcast_to(np.eye(2), (n_terms, 2, 2)).copy()
    A = np.empty((n_terms, 2, 2))
    for k in range(n_layers - 2, -1, -1):  # loop over boundaries (few)
        A[:, 0, 0] = n + n1 * c1[k]
        A[:, 0, 1] = n1 * c2[k] / cr[:, k]
        A[:, 1, 0] = n * c2[k] * cr[:, k]
        A[:, 1, 1] = n1 + n * c1[k]
        M = np.matmul(A, M)
    m10, m11 = M[:, 1, 0], M[:, 1, 1]
    num = n * (2.0 * n + 1.0) ** (n_layers - 1)
    return num / (n * m11 + n1 * m10)


def _bs_problem(relative_radii, conductivities, nterms=_BS_NTERMS):
    f = layer_coefficients(relative_radii, conductivities, nterms)
    k = np.arange(1, nterms + 1, dtype=float)
    ratio = np.min(relative_radii) / np.max(relative_radii)
    w = np.sqrt((2 * k + 1) * (3 * k + 1) / k) * ratio ** (k - 1)
    w[-1] = 0.0
    return f, w


def _bs_linear(mu, f, w):
    """Variable projection: given mu (n_fit,), best lambda and residual vector.

    The model matrix is projected with its thin SVD truncated to
    ``n_fit - 1`` components (rank-safe at degenerate ``mu`` such as the
    all-zero start), the same numerics as MNE-Python's fit.
    """
    nterms = len(f)
    k1 = np.arange(1, nterms)
    p0 = mu[0] ** k1
    y = w[:-1] * (f[1:] - p0 * f[0])
    M = w[:-1, None] * (mu[None, 1:] ** k1[:, None] - p0[:, None])
    from scipy.linalg import svd

    u, s, vt = svd(M, full_matrices=False)
    ncomp = len(mu) - 1
    u, s, vt = u[:, :ncomp], s[:ncomp], vt[:ncomp]
    uy = np.dot(y, u)
    resid = y - np.dot(u, uy)
    lam = np.empty(len(mu))
    with np.errstate(divide="ignore", invalid="ignore"):
        lam[1:] = (uy / s) @ vt
    lam[0] = f[0] - lam[1:].sum()
    return lam, resid, y


def _bs_cost(mu, f, w):
    """MNE's COBYLA objective: squared residual norm, 100 outside |mu| < 1."""
    if np.max(np.abs(mu)) >= 1.0:
        return 100.0
    r = _bs_linear(mu, f, w)[1]
    return float(r @ r)


def fit_berg_scherg(relative_radii, conductivities, n_fit: int = _BS_NFIT, method: str = "cobyla"):
    """Fit Berg & Scherg parameters to the exact layered-sphere series.

    Minimises ``sum_n w_n**2 (sum_j lambda_j mu_j**(n-1) - f_n)**2`` over
    ``n = 2..200`` subject to ``sum_j lambda_j = f_1`` (MNE-Python's
    criterion, see the module docstring); ``lambda`` is solved linearly for
    each trial ``mu`` (variable projection).

    Parameters
    ----------
    relative_radii : array-like, shape (n_shells,)
        Radii over the outermost radius, innermost first.
    conductivities : array-like, shape (n_shells,)
        S/m.
    n_fit : int
        Number of equivalent dipoles (>= 2).
    method : {"cobyla", "lsq"}
        ``"cobyla"`` (default): the optimiser and settings MNE-Python uses
        (COBYLA from ``mu = 0``, initial step 0.5, final step 1e-4), so the
        parameters equal MNE's. ``"lsq"``: bounded Gauss-Newton least squares
        from several starts, converged to round-off: the best minimum found
        of the same criterion (can differ from MNE's by >1e-4 because the
        criterion is flat along the smallest ``mu``, or be another, better
        local minimum, e.g. for the default 3-shell model).

    Returns
    -------
    mu : ndarray, shape (n_fit,)
        Decreasing.
    lambda_ : ndarray, shape (n_fit,)
        Magnitudes divided by the outermost conductivity (Ohm m).
    rv : float
        Relative residual variance of the weighted fit.
    """
    from scipy.optimize import fmin_cobyla, least_squares

    if n_fit < 2:
        raise ValueError(f"n_fit must be >= 2, got {n_fit}")
    if method not in ("cobyla", "lsq"):
        raise ValueError(f"method must be 'cobyla' or 'lsq', got {method!r}")
    rel = np.asarray(relative_radii, float)
    sig = np.asarray(conductivities, float)
    f, w = _bs_problem(rel, sig)
    if np.allclose(f, 1.0, rtol=1e-13, atol=0):
        # homogeneous sphere: one dipole at its true place is exact
        mu = 0.5 ** np.arange(n_fit)
        lam = np.zeros(n_fit)
        lam[0] = f[0]
        return mu, lam / sig[-1], 0.0
    if method == "cobyla":
        catol = 1e-6
        lim = 1.0 - 2 * catol
        mu = fmin_cobyla(
            _bs_cost,
            np.zeros(n_fit),
            [lambda x, *_: lim - np.abs(x)],
            args=(f, w),
            rhobeg=0.5,
            rhoend=1e-4,
            catol=catol,
            disp=0,
        )
    else:

        def resid(x):
            return _bs_linear(x, f, w)[1]

        bound = 1.0 - 2e-6
        best = None
        for x0 in (
            np.linspace(0.9, 0.3, n_fit),
            np.linspace(0.8, 0.1, n_fit),
            np.linspace(0.95, 0.6, n_fit),
            np.linspace(0.9, -0.3, n_fit),
        ):
            try:
                sol = least_squares(
                    resid, x0, bounds=(-bound, bound), xtol=1e-15, ftol=1e-15, gtol=1e-15
                )
            except (np.linalg.LinAlgError, ValueError):  # pragma: no cover
                continue
            if best is None or sol.cost < best.cost:
                best = sol
        mu = best.x
    lam, r, y = _bs_linear(mu, f, w)
    rv = float(r @ r / (y @ y))
    order = np.argsort(mu)[::-1]
    return mu[order], lam[order] / sig[-1], rv


@lru_cache(maxsize=64)
def _fit_cached(rel_radii: tuple, sigmas: tuple, method: str):
    mu, lam, rv = fit_berg_scherg(np.array(rel_radii), np.array(sigmas), method=method)
    return tuple(mu.tolist()), tuple(lam.tolist()), float(rv)


def sphere_potential_exact(electrodes, dipole_pos, sphere: SphereModel, n_terms=None):
    """Potential of unit x/y/z dipoles by the exact multi-shell Legendre series.

    Each electrode is taken on the scalp of a sphere with its own radius
    (the shells scaled accordingly), the same convention as the Berg & Scherg
    evaluation, so the two are directly comparable.

    Parameters
    ----------
    electrodes : array-like, shape (n_channels, 3)
        Electrode positions (m).
    dipole_pos : array-like, shape (n_dipoles, 3)
        Dipole positions (m), inside the innermost shell.
    sphere : SphereModel
    n_terms : int | None
        Terms of the series; default: enough for ``b**n < 1e-16``.

    Returns
    -------
    gain : ndarray, shape (n_channels, 3 * n_dipoles)
        V per A·m, source-major (x, y, z of dipole 0, then dipole 1, ...).
    """
    el, _ = electrode_array(electrodes, None)
    src = _source_array(dipole_pos)
    c = np.asarray(sphere.center)
    re = el - c
    rq = src - c
    R = np.linalg.norm(re, axis=1)  # (n_ch,)
    rqn = np.linalg.norm(rq, axis=1)  # (n_src,)
    b = rqn[None, :] / R[:, None]
    bmax = float(np.max(b))
    if bmax >= 1:
        raise ValueError("dipole_pos: a dipole is not inside the electrode sphere")
    if n_terms is None:
        n_terms = int(min(20000, max(10, np.ceil(np.log(1e-16) / np.log(max(bmax, 1e-3))) + 2)))
    fn = layer_coefficients(sphere.relative_radii, sphere.conductivities, n_terms)
    rhat_e = re / R[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat_q = np.where(rqn[:, None] > 0, rq / rqn[:, None], 0.0)
    x = np.clip(rhat_e @ rhat_q.T, -1.0, 1.0)  # cos(gamma), (n_ch, n_src)
    # radial and "tangential" weights: V = S_r * q.rhat_q + S_t * (q.rhat_e - x q.rhat_q)
    S_r = np.zeros_like(x)
    S_t = np.zeros_like(x)
    p_prev, p = np.ones_like(x), x.copy()  # P_0, P_1
    dp_prev, dp = np.zeros_like(x), np.ones_like(x)  # P_0', P_1'
    bpow = np.ones_like(b)
    for n in range(1, n_terms + 1):  # loop over series terms, not sources
        coef = fn[n - 1] * (2 * n + 1) / n * bpow
        S_r += coef * n * p
        S_t += coef * dp
        # P_{n+1} = ((2n+1) x P_n - n P_{n-1}) / (n+1); P'_{n+1} = P'_{n-1} + (2n+1) P_n
        p_next = ((2 * n + 1) * x * p - n * p_prev) / (n + 1)
        dp_next = dp_prev + (2 * n + 1) * p
        p_prev, p = p, p_next
        dp_prev, dp = dp, dp_next
        bpow = bpow * b
    scale = 1.0 / (4 * np.pi * sphere.conductivities[-1] * R**2)  # (n_ch,)
    S_r *= scale[:, None]
    S_t *= scale[:, None]
    # gain[:, 3i+j] = (S_r - x S_t) rhat_q[i, j] + S_t rhat_e[:, j]
    G = (S_r - x * S_t)[:, :, None] * rhat_q[None, :, :] + S_t[:, :, None] * rhat_e[:, None, :]
    return G.reshape(len(el), -1)


# ----------------------------------------------------------------------------
# Input validation


def _source_array(pos):
    pos = np.array(pos, float)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"source positions must have shape (n_sources, 3), got {pos.shape}")
    if len(pos) == 0:
        raise ValueError("source space holds zero sources")
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        raise ValueError(f"source {bad[0]} has a non-finite position {pos[bad[0]]}")
    return pos


# ----------------------------------------------------------------------------
# Forward computation


def _bs_gain_block(el_rel, r_el, r2_el, src_rel, mu, lam, out, work=None):
    """Free-orientation gain for one block of sources.

    With ``r_d = mu_j r_q``, ``x = r_e . r_d``, ``a = |r_e - r_d|`` and
    ``g = (a + r) / (r a (r a + r**2 - x))``, the homogeneous-sphere potential
    of the equivalent dipole ``j`` (MNE-Python's closed form, regrouped) is
    ``lambda_j / (4 pi) * (A_j r_q + B_j r_e) . q`` with
    ``B_j = 2 / a**3 + g`` and
    ``A_j = -2 mu_j / a**3 + (1/a - 1/r - x g) / (mu_j |r_q|**2)``.

    Parameters
    ----------
    el_rel : ndarray, shape (n_ch, 3)
        Electrodes relative to the centre (m).
    r_el, r2_el : ndarray, shape (n_ch,)
        Their distances and squared distances.
    src_rel : ndarray, shape (n_blk, 3)
        Sources relative to the centre (m).
    mu, lam : ndarray, shape (n_fit,)
    out : ndarray, shape (n_ch, n_blk, 3)
        Filled with the gain (V / A·m).
    work : list of ndarray | None
        Seven scratch arrays of at least ``n_ch * n_blk`` elements.
    """
    n_ch, n_blk = len(el_rel), len(src_rel)
    size = n_ch * n_blk
    if work is None:
        work = [np.empty(size) for _ in range(7)]
    D, A, B, a, t1, t2, t3 = (w[:size].reshape(n_ch, n_blk) for w in work)
    np.dot(el_rel, src_rel.T, out=D)  # r_e . r_q
    s2 = np.einsum("ij,ij->i", src_rel, src_rel)  # |r_q|**2, (n_blk,)
    at_center = s2 == 0.0
    s2 = np.where(at_center, 1.0, s2)
    r = r_el[:, None]
    r2 = r2_el[:, None]
    inv_r = 1.0 / r
    A.fill(0.0)
    B.fill(0.0)
    for m, lm in zip(mu, lam, strict=True):  # n_fit (3) equivalent dipoles
        # t1 = x = r_e . r_d ; a = |r_e - r_d|
        np.multiply(D, m, out=t1)
        np.multiply(t1, -2.0, out=a)
        a += r2
        a += (m * m) * s2
        np.sqrt(a, out=a)
        # t2 = r a ; t3 = r a (r a + r**2 - x)
        np.multiply(a, r, out=t2)
        np.add(t2, r2, out=t3)
        t3 -= t1
        t3 *= t2
        # t2 = g = (a + r) / t3
        np.add(a, r, out=t2)
        t2 /= t3
        # B += lam (2 / a**3 + g)
        np.reciprocal(a, out=a)  # a <- 1/a
        np.multiply(a, a, out=t3)
        t3 *= a  # 1/a**3
        np.multiply(t3, 2.0 * lm, out=t3)
        B += t3
        np.multiply(t2, lm, out=t2)
        B += t2
        # A += -2 lam mu / a**3 + lam (1/a - x g) / (mu s2)   (-1/r term after the loop)
        t3 *= -m
        A += t3
        t2 *= t1  # lam x g
        np.multiply(a, lm, out=t1)
        t1 -= t2  # lam (1/a - x g)
        t1 *= 1.0 / (m * s2)
        A += t1
    # the -1/r part: - sum_j lam_j / mu_j / s2 / r
    A -= inv_r * (np.sum(lam / mu) / s2)[None, :]
    if np.any(at_center):
        # limit |r_q| -> 0: V = sum(lam) * 3 (q . r_e) / |r_e|**3
        A[:, at_center] = 0.0
        B[:, at_center] = (3.0 * np.sum(lam)) / (r * r2)
    np.multiply(A[:, :, None], src_rel[None, :, :], out=out)
    out += B[:, :, None] * el_rel[:, None, :]
    out *= 0.25 / np.pi


def _prepare(electrodes, src, sphere, ch_names):
    if not isinstance(src, SourceSpace):
        raise ValueError(f"src must be a SourceSpace, got {type(src).__name__}")
    el, ch_names = electrode_array(electrodes, ch_names)
    pos = _source_array(src.pos)
    if sphere is None:
        sphere = SphereModel.fit(el)
    if not isinstance(sphere, SphereModel):
        raise ValueError(f"sphere must be a SphereModel, got {type(sphere).__name__}")
    sphere = sphere._fitted()
    c = np.asarray(sphere.center)
    src_rel = pos - c
    d = np.linalg.norm(src_rel, axis=1)
    bad = np.flatnonzero(d >= sphere.inner_radius)
    if bad.size:
        raise ValueError(
            f"source {bad[0]} at {pos[bad[0]]} m lies {d[bad[0]] * 1e3:.2f} mm from the sphere "
            f"centre, not inside the innermost shell (radius {sphere.inner_radius * 1e3:.2f} mm)"
            + (f"; {bad.size} sources in all" if bad.size > 1 else "")
        )
    el_rel = el - c
    r2_el = np.einsum("ij,ij->i", el_rel, el_rel)
    r_el = np.sqrt(r2_el)
    # MNE-Python evaluates every electrode wherever it is (no radius test in its
    # sphere kernel); only the centre itself has no potential formula (1 / |r_e|)
    bad = np.flatnonzero(r_el == 0)
    if bad.size:
        raise ValueError(
            f"electrode {ch_names[bad[0]]!r} lies at the sphere centre; "
            "check units (m) and coordinate frame"
        )
    warnings = []
    inside = np.flatnonzero(r_el <= sphere.inner_radius)
    if inside.size:
        listed = ", ".join(f"{ch_names[k]} ({r_el[k] * 1e3:.1f} mm)" for k in inside)
        warnings.append(
            f"{inside.size} electrode(s) lie inside the innermost shell "
            f"({sphere.inner_radius * 1e3:.1f} mm from the centre) and were evaluated where "
            f"they are, as MNE-Python does: {listed}"
        )
    return el, ch_names, el_rel, r_el, r2_el, src_rel, sphere, warnings


def _free_gain(el_rel, r_el, r2_el, src_rel, sphere, chunk):
    n_ch, n_src = len(el_rel), len(src_rel)
    G = np.empty((n_ch, n_src, 3))
    mu = np.asarray(sphere.mu)
    lam = np.asarray(sphere.lambda_)
    work = [np.empty(n_ch * min(chunk, n_src)) for _ in range(7)]
    for start in range(0, n_src, chunk):  # cache-sized blocks, each fully vectorised
        stop = min(start + chunk, n_src)
        _bs_gain_block(el_rel, r_el, r2_el, src_rel[start:stop], mu, lam, G[:, start:stop], work)
    return G


def _auto_chunk(n_ch):
    # keep each (n_ch, chunk) scratch array around 128 kB so all stay in cache
    return int(max(8, min(4096, 16384 // max(n_ch, 1))))


def make_sphere_forward_free(
    electrodes, src: SourceSpace, sphere: SphereModel | None, ch_names=None, chunk=None
):
    """Free-orientation EEG forward on a concentric-sphere model.

    Parameters
    ----------
    electrodes : array-like, shape (n_channels, 3) | Montage
        Electrode positions (m), same frame as ``src`` and ``sphere``. Used as
        given, wherever they are (no projection onto the scalp; electrodes
        inside the innermost shell are computed and named in
        ``meta["warnings"]``), as in MNE-Python; see :func:`project_to_sphere`
        for the alternative.
    src : SourceSpace
        Sources, all strictly inside the innermost shell.
    sphere : SphereModel | None
        Head model; without ``mu``/``lambda_`` the Berg & Scherg parameters
        are fitted first. ``None``: :meth:`SphereModel.fit` to the electrodes
        (the face left out).
    ch_names : sequence of str | None
        Channel names (default: from a Montage, else ``EEG001...``).
    chunk : int | None
        Sources per vectorised block (memory only; default automatic).

    Returns
    -------
    fwd : Forward
        ``gain (n_channels, 3 * n_sources)`` in V/(A·m), columns source-major
        (x, y, z of source 0, then source 1, ...), ``orientation="free"``;
        ``meta["sphere"]`` the model, ``meta["warnings"]`` (if any) the
        electrodes inside the innermost shell.

    Raises
    ------
    ValueError
        A source not strictly inside the innermost shell; an electrode at the
        centre or coinciding with an equivalent dipole (non-finite potential).
    """
    el, ch_names, el_rel, r_el, r2_el, src_rel, sphere, warnings = _prepare(
        electrodes, src, sphere, ch_names
    )
    chunk = _auto_chunk(len(el)) if chunk is None else int(chunk)
    G = _free_gain(el_rel, r_el, r2_el, src_rel, sphere, chunk)
    finite = np.isfinite(G).reshape(len(el), -1).all(axis=1)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"electrode {ch_names[k]!r} at {el[k]} m gives a non-finite potential: it "
            "coincides with an equivalent dipole of a source; check its position"
        )
    meta = {"sphere": sphere.to_attrs()}
    if warnings:
        meta["warnings"] = warnings
    return Forward(
        gain=G.reshape(len(el), -1),
        ch_names=ch_names,
        ch_pos=el,
        src=src,
        orientation="free",
        meta=meta,
    )


def make_sphere_forward(
    electrodes, src: SourceSpace, sphere: SphereModel | None, ch_names=None, chunk=None
):
    """Fixed-orientation EEG forward (dipoles along ``src.nn``).

    Parameters
    ----------
    electrodes, src, sphere, ch_names, chunk
        As in :func:`make_sphere_forward_free`.

    Returns
    -------
    fwd : Forward
        ``gain (n_channels, n_sources)`` in V/(A·m), ``orientation="fixed"``.
    """
    return make_sphere_forward_free(electrodes, src, sphere, ch_names, chunk).to_fixed()


def sphere_potential_berg_scherg(electrodes, dipole_pos, sphere: SphereModel):
    """Berg & Scherg potential of unit x/y/z dipoles, as a plain array.

    Parameters
    ----------
    electrodes : array-like, shape (n_channels, 3)
    dipole_pos : array-like, shape (n_dipoles, 3)
    sphere : SphereModel

    Returns
    -------
    gain : ndarray, shape (n_channels, 3 * n_dipoles)
        V per A·m, source-major.
    """
    src = SourceSpace(pos=_source_array(dipole_pos), nn=np.zeros((len(dipole_pos), 3)))
    return make_sphere_forward_free(electrodes, src, sphere).gain


# ----------------------------------------------------------------------------
# Forward container


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
    meta : dict
        Provenance, e.g. ``{"sphere": SphereModel.to_attrs()}``.
    """

    gain: np.ndarray
    ch_names: tuple[str, ...]
    ch_pos: np.ndarray
    src: SourceSpace
    orientation: str = "free"
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.orientation not in ("fixed", "free"):
            raise ValueError(f"orientation must be 'fixed' or 'free', got {self.orientation!r}")
        object.__setattr__(self, "ch_names", tuple(self.ch_names))
        object.__setattr__(self, "gain", np.asarray(self.gain))
        object.__setattr__(self, "ch_pos", np.asarray(self.ch_pos, float))
        n_cols = self.src.n_sources * (3 if self.orientation == "free" else 1)
        if self.gain.ndim != 2 or self.gain.shape != (len(self.ch_names), n_cols):
            raise ValueError(
                f"gain shape {self.gain.shape} does not match {len(self.ch_names)} channels x "
                f"{n_cols} columns ({self.orientation})"
            )

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

    @property
    def sphere(self) -> SphereModel | None:
        """The sphere model used, if recorded in ``meta``."""
        attrs = self.meta.get("sphere")
        return None if attrs is None else SphereModel.from_attrs(attrs)

    def to_fixed(self) -> Forward:
        """Project a free forward onto ``src.nn``.

        Returns
        -------
        fwd : Forward
            ``gain (n_channels, n_sources)``; ``self`` if already fixed.
        """
        if self.orientation == "fixed":
            return self
        G = self.gain.reshape(self.n_channels, self.n_sources, 3)
        fixed = np.einsum("csj,sj->cs", G, np.asarray(self.src.nn, float))
        return replace(self, gain=fixed, orientation="fixed")

    def pick_channels(self, names) -> Forward:
        """Select and reorder channels by name.

        Parameters
        ----------
        names : sequence of str
            Channels to keep, in the wanted order.

        Returns
        -------
        fwd : Forward
        """
        index = {n: k for k, n in enumerate(self.ch_names)}
        names = [str(n) for n in names]
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"channel {missing[0]!r} is not in the forward solution")
        if len(set(names)) != len(names):
            raise ValueError("names: duplicate channel names")
        if len(names) == 0:
            raise ValueError("names: zero channels selected")
        idx = np.array([index[n] for n in names])
        return replace(self, gain=self.gain[idx], ch_names=tuple(names), ch_pos=self.ch_pos[idx])

    def to_xarray(self):
        """Convert to an :class:`xarray.Dataset`.

        Returns
        -------
        ds : xarray.Dataset
            ``gain`` (V/(A·m)) with dims ``(channel, source)`` (fixed) or
            ``(channel, source, orientation)`` with ``orientation = x, y, z``
            (free); source variables ``pos``/``nn`` ``(source, xyz)`` and
            coords ``x, y, z`` on ``source``; electrode positions ``ch_pos``
            ``(channel, xyz)`` and coords ``ch_x, ch_y, ch_z`` on ``channel``
            (an xarray name can sit on one dimension only); attrs
            ``orientation``, ``src_kind``, sphere parameters.
        """
        import json

        ds = self.src.to_xarray()
        ds.attrs = {"src_kind": self.src.kind, "src_meta": ds.attrs.get("meta", "{}")}
        pos = np.asarray(self.ch_pos, float)
        ds = ds.assign_coords(
            channel=("channel", list(self.ch_names)),
            ch_x=("channel", pos[:, 0], {"units": "m", "long_name": "electrode x"}),
            ch_y=("channel", pos[:, 1], {"units": "m", "long_name": "electrode y"}),
            ch_z=("channel", pos[:, 2], {"units": "m", "long_name": "electrode z"}),
        )
        ds["ch_pos"] = (("channel", "xyz"), pos, {"units": "m", "long_name": "electrode position"})
        gattrs = {"units": "V/(A m)", "long_name": "EEG lead field"}
        if self.orientation == "free":
            g = self.gain.reshape(self.n_channels, self.n_sources, 3)
            ds = ds.assign_coords(orientation=["x", "y", "z"])
            ds["gain"] = (("channel", "source", "orientation"), g, gattrs)
        else:
            ds["gain"] = (("channel", "source"), np.asarray(self.gain), gattrs)
        ds.attrs["orientation"] = self.orientation
        sphere = self.meta.get("sphere")
        if sphere:
            ds.attrs.update(sphere)
        extra = {k: v for k, v in self.meta.items() if k != "sphere"}
        if extra:
            ds.attrs["meta"] = json.dumps(extra, default=str)
        return ds

    @classmethod
    def from_xarray(cls, ds) -> Forward:
        """Rebuild a :class:`Forward` from :meth:`to_xarray` output.

        Parameters
        ----------
        ds : xarray.Dataset

        Returns
        -------
        fwd : Forward
        """
        import json

        if "gain" not in ds:
            raise ValueError("forward dataset lacks variable 'gain'")
        orientation = str(ds.attrs.get("orientation", "free"))
        src_ds = ds[["pos", "nn"] + (["tris"] if "tris" in ds else [])]
        src_ds.attrs = {
            "kind": ds.attrs.get("src_kind", "discrete"),
            "meta": ds.attrs.get("src_meta", "{}"),
        }
        src = SourceSpace.from_xarray(src_ds)
        if orientation == "free":
            g = ds["gain"].transpose("channel", "source", "orientation")
            if list(g["orientation"].values) != ["x", "y", "z"]:
                g = g.sel(orientation=["x", "y", "z"])
            gain = np.asarray(g.values, float).reshape(g.shape[0], -1)
        else:
            gain = np.asarray(ds["gain"].transpose("channel", "source").values, float)
        meta = {}
        if "sphere_radii" in ds.attrs:
            keys = [k for k in ds.attrs if k.startswith("sphere_")]
            meta["sphere"] = {k: np.atleast_1d(ds.attrs[k]).astype(float).tolist() for k in keys}
        if "meta" in ds.attrs:
            meta.update(json.loads(ds.attrs["meta"]))
        return cls(
            gain=gain,
            ch_names=tuple(str(c) for c in ds["channel"].values),
            ch_pos=np.asarray(ds["ch_pos"].transpose("channel", "xyz").values, float),
            src=src,
            orientation=orientation,
            meta=meta,
        )
