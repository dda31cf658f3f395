"""Minimum-norm inverse operators: MNE, dSPM, sLORETA and eLORETA.

The construction follows MNE-Python's ``mne.minimum_norm`` (same inputs, same
numbers): average-reference projection, whitening with a rank-reduced noise
covariance, depth weighting, loose-orientation prior, source-covariance scaling
to ``trace(G R G^T) = rank`` and an SVD of the whitened, weighted gain.

Typical use::

    inv = make_inverse_operator(fwd, noise_cov, loose=0.2, depth=0.8)
    prep = prepare_inverse(inv, nave=evoked_nave, lambda2=1 / 9, method="dSPM")
    stc = prep.apply(evoked_data)            # one matrix product
    for sl, block in iter_apply_inverse(raw_data, prep, block_size=10_000):
        out_variable[..., sl] = block         # stream to a file (netCDF/HDF5/memmap)

``iter_apply_inverse`` never holds more than ``n_sources x block_size`` values of
the estimate; ``raw_data`` may itself be a ``numpy.memmap`` or any array-like
supporting ``data[:, start:stop]`` (e.g. an h5py/netCDF4 variable).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

import numpy as np

from ._system import thread_budget
from .eloreta import compute_eloreta_kernel
from .linalg import (
    CHUNK_BYTES,
    WorkerPool,
    average_reference_projector,
    eigh_whitening,
    normal_tangent_basis,
    regularized_inverse_singular_values,
    row_blocks,
    run_workers,
    svd_economy,
    svd_gram,
    sym3_eigh,
    whitener_from_eig,
)
from .priors import _depth_prior_from_norms, _parse_depth, compute_depth_prior
from .source_space import SourceSpace

__all__ = [
    "INVERSE_METHODS",
    "InverseOperator",
    "PreparedInverse",
    "SourceEstimate",
    "make_inverse_operator",
    "prepare_inverse",
    "apply_inverse",
    "apply_inverse_epochs",
    "iter_apply_inverse",
    "compute_depth_prior",
]

INVERSE_METHODS = ("MNE", "dSPM", "sLORETA", "eLORETA")
PICK_ORIS = (None, "normal", "vector")


# ---------------------------------------------------------------------------
# data classes


@dataclass(frozen=True)
class InverseOperator:
    """A method-independent minimum-norm inverse operator.

    Columns ("source components") are source-major: for ``n_orient == 3`` the
    rows of ``eigen_leads`` are ``(src0 c0, src0 c1, src0 c2, src1 c0, ...)``
    where the components are the x, y, z axes (``frame == "xyz"``, free
    orientation) or the local frame ``(t1, t2, normal)`` of
    ``basis`` (``frame == "local"``, loose orientation).

    Attributes
    ----------
    ch_names : tuple of str, length n_channels
        Channel order expected by the operator.
    src : SourceSpace
        Source space (positions in m, normals).
    eigen_fields : ndarray, shape (n_channels, n_channels)
        Left singular vectors as rows (``U^T``).
    sing : ndarray, shape (n_channels,)
        Singular values of the whitened, weighted gain (dimensionless).
    eigen_leads : ndarray, shape (n_sources * n_orient, n_channels)
        Right singular vectors as columns (``V``).
    source_cov : ndarray, shape (n_sources * n_orient,)
        Diagonal source covariance (depth x orientation prior x trace scale),
        (A·m)**2 per unit whitened variance.
    gain_white : ndarray, shape (n_channels, n_sources * n_orient)
        Whitened gain ``W G`` in the operator's frame, before source weighting
        (used by eLORETA and resolution analyses).
    noise_eig : ndarray, shape (n_channels,)
        Eigenvalues of the projected noise covariance (V**2), zeros beyond rank.
    noise_eigvec : ndarray, shape (n_channels, n_channels)
        Matching eigenvectors as rows.
    proj : ndarray, shape (n_channels, n_channels)
        Average-reference projector.
    rank : int
        Rank of the noise covariance used.
    n_orient : int
        1 (fixed) or 3 (loose/free).
    loose : float
        Loose value in [0, 1] (0 fixed, 1 free).
    depth : dict | None
        ``dict(exp=..., limit=...)`` or None when depth weighting is off.
    orient_prior : ndarray, shape (n_sources * n_orient,) | None
    depth_prior : ndarray, shape (n_sources * n_orient,) | None
    frame : {"normal", "xyz", "local"}
        Meaning of the columns (see above). Fixed operators use ``"normal"``.
    basis : ndarray, shape (n_sources, 3, 3) | None
        Local frames (rows t1, t2, n) for ``frame == "local"``.
    noise_cov : ndarray, shape (n_channels, n_channels)
        The covariance as given, reordered to ``ch_names`` (V**2).
    nave : int
        Number of averages the noise covariance refers to (always 1).
    """

    ch_names: tuple
    src: object
    eigen_fields: np.ndarray
    sing: np.ndarray
    eigen_leads: np.ndarray
    source_cov: np.ndarray
    gain_white: np.ndarray
    noise_eig: np.ndarray
    noise_eigvec: np.ndarray
    proj: np.ndarray
    rank: int
    n_orient: int
    loose: float
    depth: dict | None
    orient_prior: np.ndarray | None
    depth_prior: np.ndarray | None
    frame: str
    basis: np.ndarray | None
    noise_cov: np.ndarray
    nave: int = 1
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return len(self.ch_names)

    @property
    def n_sources(self) -> int:
        """Number of source locations."""
        return self.eigen_leads.shape[0] // self.n_orient

    @property
    def orientation(self) -> str:
        """``"fixed"``, ``"loose"`` or ``"free"``."""
        if self.n_orient == 1:
            return "fixed"
        return "free" if self.loose == 1.0 else "loose"

    @property
    def whitener(self) -> np.ndarray:
        """Whitener for ``nave == 1``, shape (n_channels, n_channels), 1/V."""
        return whitener_from_eig(self.noise_eig, self.noise_eigvec)

    def to_xarray(self):
        """Convert to an :class:`xarray.Dataset` (the ``inv.nc`` file's content).

        Returns
        -------
        ds : xarray.Dataset
            The source space's variables (``pos``, ``nn``, ``tris``), one ``inv_<field>``
            variable per array field with dims ``channel``, ``channel2``, ``eig``,
            ``noise_eig``, ``component`` (source-major source x orientation rows),
            ``source``, ``basis_row`` and ``xyz``; scalars and dicts as ``inv_<field>``
            attributes, ``inv_none_fields`` naming the fields that are None.
        """
        ds = self.src.to_xarray()
        ds.attrs = {"src_kind": self.src.kind, "src_meta": ds.attrs.get("meta", "{}")}
        n_comp = self.n_sources * self.n_orient
        ds = ds.assign_coords(channel=list(self.ch_names), component=np.arange(n_comp))
        none_fields = []
        for f in fields(self):
            name = f.name
            if name in ("ch_names", "src", "meta"):
                continue
            value = getattr(self, name)
            if value is None:
                none_fields.append(name)
            elif isinstance(value, np.ndarray):
                dims = _INVERSE_ARRAY_DIMS[name]
                ds[f"inv_{name}"] = (dims, value, {"long_name": f"InverseOperator.{name}"})
            else:
                ds.attrs[f"inv_{name}"] = value.item() if isinstance(value, np.generic) else value
        ds.attrs["inv_none_fields"] = none_fields
        ds.attrs["inv_meta"] = self.meta
        return ds

    @classmethod
    def from_xarray(cls, ds) -> InverseOperator:
        """Rebuild an operator from :meth:`to_xarray` output.

        Parameters
        ----------
        ds : xarray.Dataset
            With attributes decoded to Python objects (``exgsrc.store.open_dataset``
            does that for files).

        Returns
        -------
        InverseOperator
        """
        src_ds = ds[["pos", "nn"] + (["tris"] if "tris" in ds else [])]
        src_ds.attrs = {
            "kind": ds.attrs.get("src_kind", "discrete"),
            "meta": ds.attrs.get("src_meta", "{}"),
        }
        kwargs = {
            "ch_names": tuple(str(c) for c in ds["channel"].values),
            "src": SourceSpace.from_xarray(src_ds),
            "meta": dict(ds.attrs.get("inv_meta") or {}),
        }
        none_fields = set(ds.attrs.get("inv_none_fields", []))
        for f in fields(cls):
            name = f.name
            if name in kwargs:
                continue
            if name in none_fields:
                kwargs[name] = None
            elif f"inv_{name}" in ds:
                kwargs[name] = np.asarray(ds[f"inv_{name}"].values)
            elif f"inv_{name}" in ds.attrs:
                value = ds.attrs[f"inv_{name}"]
                kwargs[name] = value.item() if isinstance(value, np.generic) else value
        for name in ("rank", "n_orient", "nave"):
            kwargs[name] = int(kwargs[name])
        kwargs["loose"] = float(kwargs["loose"])
        return cls(**kwargs)


# Dimensions of the array fields of InverseOperator in its xarray form.
_INVERSE_ARRAY_DIMS = {
    "eigen_fields": ("eig", "channel"),
    "sing": ("eig",),
    "eigen_leads": ("component", "eig"),
    "source_cov": ("component",),
    "gain_white": ("channel", "component"),
    "noise_eig": ("noise_eig",),
    "noise_eigvec": ("noise_eig", "channel"),
    "proj": ("channel", "channel2"),
    "noise_cov": ("channel", "channel2"),
    "orient_prior": ("component",),
    "depth_prior": ("component",),
    "basis": ("source", "basis_row", "xyz"),
}


# Tiling of the free-orientation apply (PreparedInverse.apply): tiles of 96
# sources x ~1 MB of product (the core's L2), taken dynamically by the workers.
# 10 242 sources x 64 channels x 10 000 samples, 2 cores, idle, median of 6:
# 748 ms vs 885 ms for static halves of 48-source parts x 512 kB, vs 521 ms for
# the plain (3 n_sources) matmul; the squares, sums and square roots on the tile
# cost about as many passes over memory as the product has outputs.
_SOURCES_PER_PART = 96
_PRODUCT_BLOCK_BYTES = 1 << 20
# Outputs smaller than this many values are computed on the calling thread
# (thread start-up would cost more than it saves).
_THREADED_MIN_VALUES = 4_000_000


@dataclass(frozen=True)
class PreparedInverse:
    """An inverse operator reduced to one imaging kernel.

    Attributes
    ----------
    kernel : ndarray, shape (n_sources * n_orient, n_channels)
        Imaging kernel with the average-reference projection, whitening,
        regularisation and noise normalisation folded in, source-major rows.
        Units: A·m/V for ``MNE``, 1/V for dSPM/sLORETA/eLORETA-normalised values
        (eLORETA is in A·m/V like MNE).
    n_orient : int
        Kernel rows per source: 1 (fixed operator or ``pick_ori='normal'``) or 3
        (``pick_ori`` None or ``'vector'`` on loose/free operators). Rows are the
        x, y, z components (head frame) for ``'vector'`` and for free operators.
    combine : bool
        If True, :meth:`apply` returns the norm over the 3 rows of each source
        (``pick_ori=None`` on loose/free operators).
    ch_names : tuple of str
    src : SourceSpace
    method, lambda2, nave, pick_ori
        The parameters the kernel was built for.
    eloreta_info : dict | None
        ``n_iter``, ``delta``, ``converged`` of the eLORETA weight fit.
    """

    kernel: np.ndarray
    n_orient: int
    combine: bool
    ch_names: tuple
    src: object
    method: str
    lambda2: float
    nave: int
    pick_ori: str | None
    orientation: str
    eloreta_info: dict | None = None

    @property
    def n_sources(self) -> int:
        """Number of source locations."""
        return self.kernel.shape[0] // self.n_orient

    @property
    def output_orientation(self) -> str:
        """``"fixed"``, ``"normal"``, ``"magnitude"`` or ``"vector"``."""
        if self.combine:
            return "magnitude"
        if self.n_orient == 3:
            return "vector"
        return "fixed" if self.orientation == "fixed" else "normal"

    _split_kernels: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def _component_major_slabs(self, n_parts: int) -> list[tuple[int, int, np.ndarray]]:
        """Kernel cut into ``n_parts`` contiguous source ranges, each component-major.

        Each part is ``(first_source, stop_source, rows)`` with ``rows`` of shape
        ``(3 * n_part_sources, n_channels)``: all x rows, then y, then z, so the
        norm over orientations reads three contiguous slabs. Cached per
        ``n_parts`` (the copies together are one kernel's size).
        """
        if n_parts not in self._split_kernels:
            n_src, n_ch = self.n_sources, self.kernel.shape[1]
            per_source = self.kernel.reshape(n_src, 3, n_ch)
            bounds = np.linspace(0, n_src, n_parts + 1).astype(int)
            self._split_kernels[n_parts] = [
                (
                    int(a),
                    int(b),
                    np.ascontiguousarray(per_source[a:b].transpose(1, 0, 2)).reshape(-1, n_ch),
                )
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            ]
        return self._split_kernels[n_parts]

    def apply(self, data: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Apply the kernel to data.

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times)
            Sensor data (V), rows in ``ch_names`` order, any reference.
        out : ndarray, shape of the result | None
            Optional preallocated, C-contiguous output with the kernel's dtype
            (float64 unless prepared with ``dtype=float32``); reusing one
            buffer over many calls avoids the page faults of a fresh array.

        Returns
        -------
        sol : ndarray, shape (n_sources, n_times) or (n_sources, 3, n_times)
            Source values; 3 components only for ``pick_ori='vector'`` on
            loose/free operators. For ``pick_ori=None`` on loose/free operators
            the xyz product is formed in cache-sized tiles, one range of
            sources per CPU, and only the norm is written out, so memory is
            ``n_sources x n_times``.
        """
        return self._apply_checked(_check_data(data, len(self.ch_names)), out)

    def _apply_checked(self, data: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """:meth:`apply` for data already checked by ``_check_data`` (2D, finite)."""
        n_t = data.shape[1]
        if out is not None:
            shape = (
                (self.n_sources, n_t)
                if self.n_orient == 1 or self.combine
                else (self.n_sources, 3, n_t)
            )
            if (
                not isinstance(out, np.ndarray)
                or out.shape != shape
                or out.dtype != self.kernel.dtype
                or not out.flags.c_contiguous
            ):
                raise ValueError(
                    f"out must be a C-contiguous {self.kernel.dtype} array of shape {shape}, "
                    f"got {getattr(out, 'dtype', type(out).__name__)} "
                    f"{getattr(out, 'shape', '')}"
                )
        if data.dtype != self.kernel.dtype:
            data = data.astype(self.kernel.dtype)
        if not self.combine:
            return self._apply_rows(data, out)
        n_src = self.n_sources
        if out is None:
            out = np.empty((n_src, n_t), dtype=self.kernel.dtype)
        # Tiles of ~_SOURCES_PER_PART sources x a time block of ~_PRODUCT_BLOCK_BYTES
        # of product: single-threaded BLAS matmul -> squares of the x/y/z slabs summed
        # on the cache-resident tile -> sqrt straight into ``out``, so the
        # (3 n_src, n_times) product never exists. Workers take the next tile from a
        # shared counter (dynamic scheduling): a worker the OS deschedules on a busy
        # machine no longer holds back a fixed share of the work. Small problems
        # stay on the calling thread.
        n_workers = 1 if 3 * n_src * n_t < _THREADED_MIN_VALUES else min(thread_budget(), n_src)
        parts = self._component_major_slabs(-(-n_src // _SOURCES_PER_PART))
        item = self.kernel.dtype.itemsize
        widest = max(stop - first for first, stop, _ in parts)
        block = int(min(n_t, max(256, _PRODUCT_BLOCK_BYTES // (item * 3 * widest))))
        starts = range(0, n_t, block)
        n_tiles = len(starts) * len(parts)
        next_tile = itertools.count().__next__  # atomic under the GIL

        def run(worker: int) -> None:
            prod = np.empty((3 * widest, block), dtype=self.kernel.dtype)
            power = np.empty((widest, block), dtype=self.kernel.dtype)
            while (tile := next_tile()) < n_tiles:
                start = starts[tile // len(parts)]
                first, stop_src, rows = parts[tile % len(parts)]
                stop = min(start + block, n_t)
                width, n_part = stop - start, stop_src - first
                xyz = np.matmul(rows, data[:, start:stop], out=prod[: 3 * n_part, :width])
                xyz = xyz.reshape(3, n_part, width)
                # x^2 + y^2 + z^2 with SIMD ufuncs on the cache-resident tile
                # (2x faster than the equivalent einsum)
                np.square(xyz, out=xyz)
                pw = power[:n_part, :width]
                np.add(xyz[0], xyz[1], out=pw)
                np.add(pw, xyz[2], out=pw)
                np.sqrt(pw, out=out[first:stop_src, start:stop])

        run_workers(run, n_workers)
        return out

    def _apply_rows(self, data: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """``kernel @ data`` for fixed, normal and vector output (no norm).

        Large products are split by kernel rows: each worker writes its own
        contiguous rows of ``out`` with single-threaded BLAS, so it also
        first-touches them itself, which is a few percent faster than one
        multithreaded ``kernel @ data`` (benchmarks/bench_inverse.py, "dSPM
        fixed" row).
        """
        n_rows, n_t = self.kernel.shape[0], data.shape[1]
        result = np.empty((n_rows, n_t), dtype=self.kernel.dtype) if out is None else out
        rows_out = result.reshape(n_rows, n_t)
        n_workers = 1 if n_rows * n_t < _THREADED_MIN_VALUES else min(thread_budget(), n_rows)
        if n_workers == 1:
            np.matmul(self.kernel, data, out=rows_out)
        else:
            bounds = np.linspace(0, n_rows, n_workers + 1).astype(int)

            def run(worker: int) -> None:
                first, stop = bounds[worker], bounds[worker + 1]
                np.matmul(self.kernel[first:stop], data, out=rows_out[first:stop])

            run_workers(run, n_workers)
        if out is None and self.n_orient == 3:
            return result.reshape(self.n_sources, 3, n_t)
        return result


@dataclass(frozen=True)
class SourceEstimate:
    """Source time courses.

    Parameters
    ----------
    data : ndarray, shape (n_sources, n_times) or (n_sources, 3, n_times)
        Source values: A·m for ``MNE``/``eLORETA``, dimensionless (noise-normalised)
        for ``dSPM``/``sLORETA``. The 3-component form holds x, y, z (head frame).
    src : SourceSpace
    times : ndarray, shape (n_times,)
        Seconds (or sample indices when not given).
    method : str
    lambda2 : float
    nave : int | float
        Number of averages (the effective one of a contrast: a float).
    orientation : {"fixed", "normal", "magnitude", "vector"}
    meta : dict
    """

    data: np.ndarray
    src: object
    times: np.ndarray
    method: str
    lambda2: float
    nave: int | float
    orientation: str
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def units(self) -> str:
        """Units of ``data``."""
        return "A·m" if self.method in ("MNE", "eLORETA") else "dimensionless"

    def to_xarray(self):
        """Labelled :class:`xarray.Dataset` with variable ``stc``.

        Dims ``source``, (``orientation`` with values x, y, z), ``time``;
        coordinates ``x``, ``y``, ``z`` (m) on ``source``; ``units``/``long_name``
        attrs; method, lambda2, nave, orientation as dataset attrs.
        """
        import xarray as xr

        pos = np.asarray(self.src.pos)
        coords = {
            "source": np.arange(self.data.shape[0]),
            "time": np.asarray(self.times, dtype=np.float64),
            "x": ("source", pos[:, 0], {"units": "m"}),
            "y": ("source", pos[:, 1], {"units": "m"}),
            "z": ("source", pos[:, 2], {"units": "m"}),
        }
        coords["time"] = ("time", coords["time"], {"units": "s"})
        if self.data.ndim == 3:
            dims = ("source", "orientation", "time")
            coords["orientation"] = ["x", "y", "z"]
        else:
            dims = ("source", "time")
        var = xr.Variable(
            dims,
            self.data,
            attrs={"units": self.units, "long_name": f"{self.method} source estimate"},
        )
        return xr.Dataset(
            {"stc": var},
            coords=coords,
            attrs={
                "method": self.method,
                "lambda2": float(self.lambda2),
                "nave": _check_nave(self.nave),
                "orientation": self.orientation,
            },
        )

    @classmethod
    def from_xarray(cls, ds, src):
        """Rebuild from :meth:`to_xarray` output and the matching source space."""
        return cls(
            data=np.asarray(ds["stc"].values),
            src=src,
            times=np.asarray(ds["time"].values),
            method=str(ds.attrs["method"]),
            lambda2=float(ds.attrs["lambda2"]),
            nave=_check_nave(ds.attrs["nave"]),
            orientation=str(ds.attrs["orientation"]),
        )


# ---------------------------------------------------------------------------
# input checks


def _check_data(data, n_channels: int, name: str = "data") -> np.ndarray:
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"{name} must be 2D (n_channels, n_times), got shape {data.shape}")
    if data.shape[0] != n_channels:
        raise ValueError(
            f"{name} has {data.shape[0]} channels but the inverse operator has {n_channels}"
        )
    if not np.all(np.isfinite(data)):
        bad = np.where(~np.all(np.isfinite(data), axis=1))[0]
        raise ValueError(f"{name} contains NaN or infinite values (rows {bad[:10].tolist()})")
    return data


def _match_channels(want: tuple, have, what: str, have_what: str = "data") -> np.ndarray | None:
    """Indices into ``have`` for each name in ``want``; None when identical."""
    have = list(have)
    if len(set(have)) != len(have):
        dup = sorted({c for c in have if have.count(c) > 1})
        raise ValueError(f"duplicate channel names in {have_what}: {dup}")
    if tuple(have) == tuple(want):
        return None
    index = {c: i for i, c in enumerate(have)}
    missing = [c for c in want if c not in index]
    if missing:
        raise ValueError(
            f"{len(missing)} channel(s) of the {what} are missing from {have_what}: {missing}"
        )
    return np.array([index[c] for c in want], dtype=int)


def _check_method(method: str) -> str:
    if method not in INVERSE_METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {INVERSE_METHODS}")
    return method


def _check_pick_ori(pick_ori) -> str | None:
    if pick_ori not in PICK_ORIS:
        raise ValueError(f"unknown pick_ori {pick_ori!r}; expected one of {PICK_ORIS}")
    return pick_ori


def _check_lambda2(lambda2) -> float:
    lam = float(lambda2)
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"lambda2 must be a positive finite number, got {lambda2!r}")
    return lam


def _check_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")
    return dt


def _check_nave(nave) -> int | float:
    """A positive number of averages: an int when integral, else the float (the
    effective nave of a weighted sum of averages, as ``mne.combine_evoked`` gives)."""
    try:
        value = float(nave)
    except (TypeError, ValueError):
        raise ValueError(f"nave must be a positive number, got {nave!r}") from None
    if not np.isfinite(value) or value <= 0 or isinstance(nave, bool):
        raise ValueError(f"nave must be a positive number, got {nave!r}")
    return int(value) if value.is_integer() else value


# ---------------------------------------------------------------------------
# operator construction


def make_inverse_operator(
    fwd,
    noise_cov,
    loose: float = 0.2,
    depth=0.8,
    fixed: bool = False,
    rank: int | str | None = None,
) -> InverseOperator:
    """Assemble a minimum-norm inverse operator (MNE-Python semantics).

    Parameters
    ----------
    fwd : Forward
        Forward model; ``orientation`` "free" (x, y, z columns) or "fixed"
        (columns along ``src.nn``). Its channel order defines the operator's.
    noise_cov : NoiseCov | ndarray, shape (n_channels, n_channels)
        Noise covariance (V**2). A NoiseCov (anything with ``.data`` and
        ``.ch_names``) is reordered by name; a bare array must be in the
        forward's channel order.
    loose : float
        Tangential source variance relative to the normal one, in [0, 1];
        0 gives a fixed-orientation operator, 1 a free one. Values < 1 need
        meaningful normals (surface or discrete source spaces).
    depth : float | dict | None
        Depth-weighting exponent (MNE default 0.8, limit 10), a
        ``dict(exp=..., limit=...)``, or None/0 to disable.
    fixed : bool
        Force a fixed-orientation operator (loose is then ignored). With a free
        forward the depth prior is computed from the free gain (spectral norm of
        each 3-column block) before projecting onto the normals, as MNE does;
        with a fixed forward it uses the column norms (MNE's
        ``allow_fixed_depth=True``).
    rank : int | None | "cov"
        Rank of the noise covariance after average referencing; None estimates
        it from the matrix as MNE does; ``"cov"`` uses ``noise_cov.rank``
        (estimating when that is None).

    Returns
    -------
    inv : InverseOperator
        Always models average-referenced EEG: the average-reference projector
        is part of the operator, so referenced and unreferenced data give the
        same estimate.

    Notes
    -----
    Cost for ``n`` channels and ``c`` gain columns: ~5 n^2 c flops, all in
    BLAS-3 (whitening GEMM 2 n^2 c; SVD of the whitened, weighted gain through
    its (n-1) x (n-1) Gram matrix, n^2 c + 2 n^2 c, see
    :func:`exgsrc.linalg.svd_gram` for its precision), computed per
    cache-sized chunk of sources on one worker per CPU; the only gain-sized
    arrays are the two outputs ``gain_white`` and ``eigen_leads``
    (benchmarks/README.md).
    """
    ch_names = tuple(fwd.ch_names)
    gain = np.asarray(fwd.gain, dtype=np.float64)
    n_ch = len(ch_names)
    if gain.ndim != 2 or gain.shape[0] != n_ch:
        raise ValueError(f"forward gain shape {gain.shape} does not match {n_ch} channel names")
    # one pass without a temporary: a sum is finite iff no entry is inf or NaN
    # (barring overflow, which the exact test then rules out)
    if not np.isfinite(gain.sum()) and not np.all(np.isfinite(gain)):
        raise ValueError("forward gain contains NaN or infinite values")
    src = fwd.src
    n_src = src.n_sources
    fwd_orient = fwd.orientation
    if fwd_orient not in ("fixed", "free"):
        raise ValueError(f"forward orientation must be 'fixed' or 'free', got {fwd_orient!r}")
    if gain.shape[1] != n_src * (3 if fwd_orient == "free" else 1):
        raise ValueError(
            f"forward gain has {gain.shape[1]} columns, expected "
            f"{n_src * (3 if fwd_orient == 'free' else 1)} for {n_src} {fwd_orient} sources"
        )

    # --- noise covariance, reordered by name
    cov_data = np.asarray(getattr(noise_cov, "data", noise_cov), dtype=np.float64)
    cov_names = getattr(noise_cov, "ch_names", None)
    if cov_names is not None:
        idx = _match_channels(ch_names, cov_names, "forward", "the noise covariance")
        if cov_data.ndim != 2 or cov_data.shape != (len(cov_names), len(cov_names)):
            raise ValueError(
                f"noise_cov data shape {cov_data.shape} does not match its "
                f"{len(cov_names)} channel names"
            )
        if idx is not None:
            cov_data = cov_data[np.ix_(idx, idx)]
    elif cov_data.shape != (n_ch, n_ch):
        raise ValueError(
            f"noise_cov has shape {cov_data.shape}, expected ({n_ch}, {n_ch}) "
            "for the forward's channels"
        )
    if isinstance(rank, str):
        if rank != "cov":
            raise ValueError(f"rank must be an int, None or 'cov', got {rank!r}")
        rank = getattr(noise_cov, "rank", None)

    # --- orientation
    loose = 0.0 if fixed else float(loose)
    if not 0.0 <= loose <= 1.0:
        raise ValueError(f"loose must be in [0, 1], got {loose!r}")
    depth_opts = _parse_depth(depth)
    if fwd_orient == "fixed" and loose > 0:
        raise ValueError(
            f"a fixed-orientation forward can only give a fixed inverse (loose=0), got loose={loose}"
        )
    has_normals = getattr(src, "kind", "surface") in ("surface", "discrete")
    if loose < 1.0 and fwd_orient == "free" and not has_normals:
        raise ValueError(
            f"loose={loose} needs source normals, but the source space kind is "
            f"{src.kind!r}; use loose=1 (free orientation)"
        )

    # --- orientation: columns in the operator's frame
    basis = None
    orient_prior = None
    nn_unit = None
    n_fwd_orient = 3 if fwd_orient == "free" else 1
    if loose == 0.0:
        n_orient, frame = 1, "normal"
        if fwd_orient == "free":
            nn = np.asarray(src.nn, dtype=np.float64)
            nn_unit = nn / np.linalg.norm(nn, axis=1)[:, None]
    elif loose < 1.0:
        n_orient, frame = 3, "local"
        basis = normal_tangent_basis(np.asarray(src.nn, dtype=np.float64))
        orient_prior = np.ones(3 * n_src)
        orient_prior[0::3] = loose
        orient_prior[1::3] = loose
    else:
        n_orient, frame = 3, "xyz"
        orient_prior = np.ones(3 * n_src)

    # --- whitening (average reference projected, rank reduced). The whitener's
    # rows beyond the rank are zero, so are the matching columns of the whitened
    # gain: the SVD runs on the n_nzero others.
    noise_eig, noise_eigvec, rank = eigh_whitening(cov_data, rank=rank, avg_ref=True)
    whitener_t = np.ascontiguousarray(whitener_from_eig(noise_eig, noise_eigvec).T)
    keep = _nonzero_columns(noise_eig > 0)
    n_nzero = int(np.sum(noise_eig > 0))

    with WorkerPool(gain.size) as pool:
        # The whitened gain in the tall layout (one row per source component),
        # built per worker in cache-sized chunks of sources: transpose, depth
        # Gram (unwhitened, free), rotation to the local frame or projection on
        # the normal, whitening. No gain-sized temporary.
        gain_white_t = np.empty((n_src * n_orient, n_ch))
        gtg = np.empty((n_src, 3, 3)) if depth_opts is not None and n_fwd_orient == 3 else None
        col_norm2 = np.empty(n_src) if depth_opts is not None and n_fwd_orient == 1 else None
        parts = row_blocks(n_src, pool.n_workers)
        chunk = max(64, CHUNK_BYTES // (8 * 3 * n_ch))

        def whiten_part(i):
            for lo in range(parts[i][0], parts[i][1], chunk):
                hi = min(lo + chunk, parts[i][1])
                g = np.ascontiguousarray(gain[:, lo * n_fwd_orient : hi * n_fwd_orient].T)
                if gtg is not None:
                    g3 = g.reshape(hi - lo, 3, n_ch)
                    np.matmul(g3, g3.transpose(0, 2, 1), out=gtg[lo:hi])
                elif col_norm2 is not None:
                    col_norm2[lo:hi] = np.einsum("vc,vc->v", g, g)
                if basis is not None:
                    g = np.matmul(basis[lo:hi], g.reshape(hi - lo, 3, n_ch)).reshape(-1, n_ch)
                elif nn_unit is not None:
                    g = np.einsum("vk,vkc->vc", nn_unit[lo:hi], g.reshape(hi - lo, 3, n_ch))
                np.matmul(g, whitener_t, out=gain_white_t[lo * n_orient : hi * n_orient])

        pool.map(whiten_part, len(parts))

        # --- depth prior, from the unwhitened gain
        depth_prior = None
        if depth_opts is not None:
            if gtg is not None:  # squared spectral norm of each source's 3 columns
                d = sym3_eigh(gtg, vectors=False)[:, -1]
            else:
                d = col_norm2
            depth_prior = _depth_prior_from_norms(
                d, depth_opts["exp"], depth_opts["limit"], fix_zeros=gtg is None
            )
            if n_orient == 3:
                depth_prior = np.repeat(depth_prior, 3)

        source_std = np.ones(gain_white_t.shape[0])
        if depth_prior is not None:
            source_std *= depth_prior
        if orient_prior is not None:
            source_std *= orient_prior
        source_std = np.sqrt(source_std)
        if gain_white_t.shape[0] < n_nzero:  # fewer source components than channels
            u, s, vt = svd_economy(gain_white_t.T * source_std)
            scale = np.sqrt(n_nzero / np.sum(s**2))
            source_std *= scale
            sing, eigen_fields, eigen_leads = s * scale, u.T.copy(), vt.T.copy()
        else:
            # SVD of the whitened, weighted gain through its n_nzero^2 Gram
            # matrix, scaled afterwards so that trace(G R G^T) = sum(s**2) = n_nzero
            eigen_leads = np.zeros((gain_white_t.shape[0], n_ch))
            u, s, _ = svd_gram(
                gain_white_t[:, keep], row_scale=source_std, out=eigen_leads, pool=pool
            )
            scale = np.sqrt(n_nzero / np.sum(s**2))
            source_std *= scale
            sing = np.zeros(n_ch)
            sing[:n_nzero] = s * scale
            eigen_fields = np.zeros((n_ch, n_ch))
            eigen_fields[:n_nzero, keep] = u.T
            # null directions of the whitened data: the zero rows of the whitener
            null = np.flatnonzero(noise_eig <= 0)
            eigen_fields[n_nzero + np.arange(null.size), null] = 1.0
    return InverseOperator(
        ch_names=ch_names,
        src=src,
        eigen_fields=eigen_fields,
        sing=sing,
        eigen_leads=eigen_leads,
        source_cov=source_std**2,
        gain_white=gain_white_t.T,
        noise_eig=noise_eig,
        noise_eigvec=noise_eigvec,
        proj=average_reference_projector(n_ch),
        rank=int(rank),
        n_orient=n_orient,
        loose=loose,
        depth=depth_opts,
        orient_prior=orient_prior,
        depth_prior=depth_prior,
        frame=frame,
        basis=basis,
        noise_cov=cov_data,
        nave=1,
    )


def _nonzero_columns(mask: np.ndarray):
    """Index for ``mask``'s columns: a slice when they are contiguous (no copy)."""
    idx = np.flatnonzero(mask)
    if idx.size and idx[-1] - idx[0] + 1 == idx.size:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


# ---------------------------------------------------------------------------
# preparation


def prepare_inverse(
    inv: InverseOperator,
    nave: int,
    lambda2: float,
    method: str,
    pick_ori: str | None = None,
    eloreta_options=None,
    dtype=np.float64,
) -> PreparedInverse:
    """Precompute the imaging kernel for one (nave, lambda2, method, pick_ori).

    Parameters
    ----------
    inv : InverseOperator
    nave : int | float
        Number of averages in the data (scales the noise covariance by 1/nave); a
        float is the effective nave of a contrast
        (:func:`exgsrc.preprocessing.combine_evoked`).
    lambda2 : float
        Regularisation (> 0), typically ``1 / SNR**2``.
    method : {"MNE", "dSPM", "sLORETA", "eLORETA"}
    pick_ori : None | "normal" | "vector"
        None: one value per source (norm over the 3 components for loose/free
        operators); "normal": the component along the source normal (loose/free
        operators with normals); "vector": x, y, z components (loose/free only).
    eloreta_options : EloretaOptions | dict | None
        eLORETA solver options (ignored for other methods).
    dtype : {numpy.float64, numpy.float32}
        Precision of the kernel and of :meth:`PreparedInverse.apply` (data are
        cast block by block). float32 roughly doubles the throughput on long
        recordings at ~1e-6 relative precision; the kernel itself is always
        computed in float64.

    Returns
    -------
    PreparedInverse
        ``apply(data)`` is one matrix product (+ the norm over xyz for
        ``pick_ori=None`` on loose/free operators).
    """
    _check_method(method)
    _check_pick_ori(pick_ori)
    lambda2 = _check_lambda2(lambda2)
    nave = _check_nave(nave)
    if inv.n_orient == 1 and pick_ori is not None:
        raise ValueError(
            f"pick_ori={pick_ori!r} needs a loose or free operator; this operator is fixed "
            "(use pick_ori=None)"
        )
    if pick_ori == "normal" and inv.frame == "xyz":
        kind = getattr(inv.src, "kind", "surface")
        if kind not in ("surface", "discrete"):
            raise ValueError(
                f"pick_ori='normal' needs source normals, but the free operator's source "
                f"space kind is {kind!r}"
            )

    scale = float(inv.nave) / nave
    noise_eig = inv.noise_eig * scale
    whitener = whitener_from_eig(noise_eig, inv.noise_eigvec)
    white_proj = whitener @ inv.proj
    eloreta_info = None

    if method == "eLORETA":
        k_rows, eloreta_info = compute_eloreta_kernel(
            inv, lambda2, white_proj, np.sqrt(1.0 / scale), eloreta_options
        )
    else:
        k_rows = _minimum_norm_kernel(inv, scale, lambda2, white_proj, method)

    kernel, n_orient, combine = _orient_kernel(inv, k_rows, pick_ori)
    return PreparedInverse(
        kernel=np.ascontiguousarray(kernel, dtype=_check_dtype(dtype)),
        n_orient=n_orient,
        combine=combine,
        ch_names=inv.ch_names,
        src=inv.src,
        method=method,
        lambda2=lambda2,
        nave=nave,
        pick_ori=pick_ori,
        orientation=inv.orientation,
        eloreta_info=eloreta_info,
    )


def _orient_kernel(inv: InverseOperator, k: np.ndarray, pick_ori):
    """Rotate/pick kernel rows; returns (kernel, rows per source, combine)."""
    if inv.n_orient == 1:
        return k, 1, False
    n_src, n_ch = inv.n_sources, k.shape[1]
    k3 = k.reshape(n_src, 3, n_ch)
    if pick_ori is None:
        return k, 3, True
    if pick_ori == "normal":
        if inv.frame == "local":
            return k3[:, 2].copy(), 1, False
        nn = np.asarray(inv.src.nn, dtype=np.float64)
        nn = nn / np.linalg.norm(nn, axis=1)[:, None]
        return np.einsum("vk,vkc->vc", nn, k3), 1, False
    # vector: report x, y, z
    if inv.frame == "local":
        k3 = np.einsum("vak,vac->vkc", inv.basis, k3)
    return k3.reshape(3 * n_src, n_ch), 3, False


def _minimum_norm_kernel(inv, scale, lambda2, white_proj, method):
    """MNE/dSPM/sLORETA kernel rows in the operator's frame, noise-normalised.

    ``K = diag(sqrt(source_cov)) V diag(reginv) U^T W P``, only the ``rank``
    leading singular components (the others have ``reginv = 0``), computed per
    block of sources on the workers together with the noise normalisation
    (dSPM: ``1 / ||row of diag(sqrt(source_cov)) V diag(reginv)||`` per source,
    sLORETA with ``reginv * sqrt(1 + s**2 / lambda2)``), so the kernel is
    written once and no (n_components, n_channels) temporary is formed.
    """
    source_cov = inv.source_cov * scale
    reginv = regularized_inverse_singular_values(inv.sing, inv.rank, lambda2)
    r = min(int(inv.rank), reginv.size)
    trans = (inv.eigen_fields[:r] * reginv[:r, None]) @ white_proj
    weight2 = None
    if method == "dSPM":
        weight2 = reginv[:r] ** 2
    elif method == "sLORETA":
        weight2 = reginv[:r] ** 2 * (1.0 + inv.sing[:r] ** 2 / lambda2)
    leads = inv.eigen_leads
    n_rows, n_orient = leads.shape[0], inv.n_orient
    kernel = np.empty((n_rows, white_proj.shape[1]))
    with WorkerPool(kernel.size) as pool:
        parts = row_blocks(n_rows, pool.n_workers, align=n_orient)
        chunk = max(n_orient, (CHUNK_BYTES // (8 * leads.shape[1])) // n_orient * n_orient)

        def kernel_part(i):
            for lo in range(parts[i][0], parts[i][1], chunk):
                hi = min(lo + chunk, parts[i][1])
                v = leads[lo:hi, :r]
                row_scale = np.sqrt(source_cov[lo:hi])
                if weight2 is not None:
                    nn2 = source_cov[lo:hi] * ((v * v) @ weight2)
                    if n_orient == 3:
                        nn2 = np.repeat(nn2.reshape(-1, 3).sum(axis=1), 3)
                    row_scale /= np.sqrt(nn2)
                np.matmul(v, trans, out=kernel[lo:hi])
                kernel[lo:hi] *= row_scale[:, None]

        pool.map(kernel_part, len(parts))
    return kernel


# ---------------------------------------------------------------------------
# application


def _pick_data_channels(data, inv_ch_names: tuple, ch_names, axis: int):
    if ch_names is None:
        return data
    idx = _match_channels(inv_ch_names, ch_names, "inverse operator", "data")
    if idx is None:
        return data
    return np.take(data, idx, axis=axis)


def _check_times(times, n_times: int) -> np.ndarray:
    """Sample times in s (sample indices when None), one per data column."""
    if times is None:
        return np.arange(n_times, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (n_times,):
        raise ValueError(f"times has shape {times.shape}, expected ({n_times},)")
    return times


def _as_prepared(inv, nave, lambda2, method, pick_ori, eloreta_options) -> PreparedInverse:
    if isinstance(inv, PreparedInverse):
        return inv
    return prepare_inverse(inv, nave, lambda2, method, pick_ori, eloreta_options)


def apply_inverse(
    data: np.ndarray,
    inv,
    lambda2: float = 1.0 / 9.0,
    method: str = "dSPM",
    pick_ori: str | None = None,
    nave: int = 1,
    times: np.ndarray | None = None,
    ch_names=None,
    eloreta_options=None,
) -> SourceEstimate:
    """Source estimate of one data segment (evoked response or continuous data).

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        Sensor data in V (any EEG reference).
    inv : InverseOperator | PreparedInverse
        A PreparedInverse is used as is (lambda2/method/pick_ori/nave ignored).
    lambda2, method, pick_ori, nave, eloreta_options
        See :func:`prepare_inverse`.
    times : ndarray, shape (n_times,) | None
        Time of each sample in s; None uses sample indices.
    ch_names : sequence of str | None
        Names of the data rows; used to reorder to the operator's channels
        (extra channels are dropped, missing ones raise). None: rows already in
        the operator's order.

    Returns
    -------
    SourceEstimate
    """
    prep = _as_prepared(inv, nave, lambda2, method, pick_ori, eloreta_options)
    data = np.asarray(data)
    data = _pick_data_channels(data, prep.ch_names, ch_names, axis=0)
    times = _check_times(times, data.shape[-1])
    sol = prep.apply(data)
    return SourceEstimate(
        data=sol,
        src=prep.src,
        times=times,
        method=prep.method,
        lambda2=prep.lambda2,
        nave=prep.nave,
        orientation=prep.output_orientation,
    )


def apply_inverse_epochs(
    epochs: np.ndarray,
    inv,
    lambda2: float = 1.0 / 9.0,
    method: str = "dSPM",
    pick_ori: str | None = None,
    nave: int = 1,
    times: np.ndarray | None = None,
    ch_names=None,
    eloreta_options=None,
) -> list[SourceEstimate]:
    """Source estimates for each epoch (the kernel is prepared once).

    Parameters
    ----------
    epochs : ndarray, shape (n_epochs, n_channels, n_times)
        Epoched data in V.
    inv, lambda2, method, pick_ori, nave, times, ch_names, eloreta_options
        As in :func:`apply_inverse`.

    Returns
    -------
    stcs : list of SourceEstimate, length n_epochs
    """
    epochs = np.asarray(epochs)
    if epochs.ndim != 3:
        raise ValueError(f"epochs must be 3D (n_epochs, n_channels, n_times), got {epochs.shape}")
    prep = _as_prepared(inv, nave, lambda2, method, pick_ori, eloreta_options)
    epochs = _pick_data_channels(epochs, prep.ch_names, ch_names, axis=1)
    n_ep, n_ch, n_t = epochs.shape
    times = _check_times(times, n_t)
    flat = np.ascontiguousarray(epochs.transpose(1, 0, 2)).reshape(n_ch, n_ep * n_t)
    sol = prep._apply_checked(_check_data(flat, len(prep.ch_names), "epochs"), None)
    sol = sol.reshape(sol.shape[:-1] + (n_ep, n_t))
    sol = np.moveaxis(sol, -2, 0)
    return [
        SourceEstimate(
            data=np.ascontiguousarray(s),
            src=prep.src,
            times=times,
            method=prep.method,
            lambda2=prep.lambda2,
            nave=prep.nave,
            orientation=prep.output_orientation,
        )
        for s in sol
    ]


def iter_apply_inverse(
    data, prepared: PreparedInverse, block_size: int = 10_000
) -> Iterator[tuple[slice, np.ndarray]]:
    """Apply a prepared kernel block by block along time (bounded memory).

    Parameters
    ----------
    data : array-like, shape (n_channels, n_times)
        Sensor data in V, rows in ``prepared.ch_names`` order. Anything that
        supports ``data[:, start:stop]`` works (ndarray, ``numpy.memmap``,
        h5py/netCDF4 variables), so the whole recording need not be in memory.
    prepared : PreparedInverse
    block_size : int
        Samples per block; peak extra memory is about
        ``kernel rows x block_size x 8`` bytes.

    Yields
    ------
    sl : slice
        Time samples covered by the block.
    block : ndarray, shape (n_sources, n) or (n_sources, 3, n)
        Source values for those samples.

    Examples
    --------
    Streaming a 1-hour recording into a netCDF variable without holding the
    source-by-time matrix::

        with netCDF4.Dataset(path, "w") as nc:
            ...  # create dimensions source, time and variable "stc"
            for sl, block in iter_apply_inverse(raw, prep, block_size=20_000):
                nc["stc"][:, sl] = block
    """
    if not isinstance(prepared, PreparedInverse):
        raise ValueError("prepared must be a PreparedInverse (use prepare_inverse)")
    block_size = int(block_size)
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    shape = getattr(data, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(f"data must be 2D (n_channels, n_times), got shape {shape}")
    n_t = shape[1]
    for start in range(0, n_t, block_size):
        sl = slice(start, min(start + block_size, n_t))
        yield sl, prepared.apply(np.asarray(data[:, sl]))
