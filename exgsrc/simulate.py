"""The embedded demo cohort: simulated EEG with known dipoles, written as real BIDS.

The numerical part (:func:`electrode_directions`, :func:`simulate_subject`)
is plain numpy. :func:`make_demo_bids` is the one function here that writes
files: an EEG-BIDS tree with EDF recordings (via ``edfio``), ``channels.tsv``,
``electrodes.tsv``, ``coordsystem.json``, ``events.tsv``, ``participants.tsv``
and ``dataset_description.json``. The ground truth (head spheres, dipoles)
goes to ``code/demo_truth.json`` so the workflow can score localisation.

Model of each subject
---------------------
* A 3-shell sphere head (brain, skull, scalp relative radii 0.87, 0.92, 1.0;
  conductivities 0.33, 0.0042, 0.33 S/m) with a per-subject scalp radius
  (85-95 mm) and centre ``(0, 0, 0.045)`` m plus a few mm of offset.
* Electrodes (``montage``): a 10-10 subset on the scalp sphere (default,
  ``"10-10 32"``), or a high-density EGI net (``"GSN-HydroCel-129"``,
  ``"GSN-HydroCel-256"``) with its cheek and neck electrodes; positions
  jittered by a few mm. See "High-density nets" below.
* One current dipole per condition at 70 % of the scalp radius (on the
  default source shell of the workflow), mostly radial, Gabor time course.
* Background: ~40 random cortical dipoles with 1/f time courses, two
  posterior alpha (10 Hz) generators with waxing/waning amplitude, and
  white sensor noise; one or two bad channels and a few epochs with
  blink-like artefacts.

High-density nets
-----------------
The EGI template positions (:func:`exgsrc.io.montage.standard_montage`, head
frame of the template's fiducials) are scaled about the head-frame origin so
that the sphere fitted to them without the face (MNE-Python's rule,
:func:`exgsrc.scalp.fit_scalp_sphere`) gets the subject's scalp radius; the
subject's sphere centre is that fitted centre plus a few mm. Electrodes and
fiducials are written in this frame (a true CapTrak frame: fiducials on the
xy-plane), so the face, cheek and neck electrodes lie off the sphere by up
to a few cm, as on a real head. The head itself is the sphere: each
electrode records the scalp potential at its radial projection onto the
scalp sphere (the FieldTrip/Brainstorm reading of an off-sphere electrode),
which keeps every potential inside the model's domain; the truth records the
sphere (``center``, ``radius``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .store import write_text_atomic

__all__ = [
    "DEMO_CONDITIONS",
    "DEMO_TASK",
    "DEMO_MONTAGES",
    "RELATIVE_RADII",
    "CONDUCTIVITIES",
    "SOURCE_FRACTION",
    "electrode_directions",
    "standard_channel_names",
    "simulate_subject",
    "make_demo_bids",
]

DEMO_TASK = "demo"
RELATIVE_RADII = (0.87, 0.92, 1.0)
CONDUCTIVITIES = (0.33, 0.0042, 0.33)
#: Radius of the true dipoles as a fraction of the scalp radius.
SOURCE_FRACTION = 0.7

#: condition -> (direction from the sphere centre, latency s, frequency Hz)
DEMO_CONDITIONS: dict[str, tuple[tuple[float, float, float], float, float]] = {
    "auditory": ((-0.80, 0.05, 0.45), 0.100, 6.0),
    "visual": ((0.15, -0.85, 0.40), 0.120, 5.0),
    "somatosensory": ((0.45, 0.05, 0.85), 0.080, 7.0),
    "motor": ((-0.35, 0.25, 0.90), 0.090, 6.0),
}

#: Montages of the demo cohort: "10-10 N" (N = 8..64 channels of the 10-10
#: subset on the scalp sphere) or an EGI high-density net.
DEMO_MONTAGES = ("10-10 32", "GSN-HydroCel-129", "GSN-HydroCel-256")
_HD_NETS = ("GSN-HydroCel-129", "GSN-HydroCel-256")

# 10-10 layout on an ideal sphere. Midline polar angles (deg from the vertex,
# + = anterior) per row; the outer ring sits at 72 deg from the vertex.
_ROWS = {
    "Fp": 72.0,
    "AF": 54.0,
    "F": 36.0,
    "FC": 18.0,
    "C": 0.0,
    "CP": -18.0,
    "P": -36.0,
    "PO": -54.0,
    "O": -72.0,
}
_RING = {"Fp": "Fp", "AF": "AF", "F": "F", "FC": "FT", "C": "T", "CP": "TP", "P": "P", "PO": "PO"}
_RING_AZ = {"Fp": 72.0, "AF": 54.0, "F": 36.0, "FC": 18.0, "C": 0.0, "CP": -18.0, "P": -36.0}
_RING_AZ.update({"PO": -54.0, "O": -72.0})

_NAMES_32 = (
    "Fp1 Fp2 AF3 AF4 F7 F3 Fz F4 F8 FC5 FC1 FC2 FC6 T7 C3 Cz C4 T8 CP5 CP1 CP2 CP6 "
    "P7 P3 Pz P4 P8 PO3 PO4 O1 Oz O2"
).split()
_NAMES_64 = (
    _NAMES_32
    + (
        "Fpz AF7 AFz AF8 F5 F1 F2 F6 FT7 FC3 FCz FC4 FT8 C5 C1 C2 C6 TP7 CP3 CPz CP4 TP8 "
        "P5 P1 P2 P6 PO7 POz PO8 F9 F10 Iz"
    ).split()
)


def standard_channel_names(n_channels: int = 32) -> list[str]:
    """Names of the demo montage (10-10 subset).

    Parameters
    ----------
    n_channels : int
        Between 8 and 64.

    Returns
    -------
    list of str
    """
    if not 8 <= n_channels <= 64:
        raise ValueError(f"n_channels must be between 8 and 64, got {n_channels}")
    return list(_NAMES_64[:n_channels])


def _parse_montage(montage: str | None, n_channels: int | None) -> tuple[str | None, list]:
    """(net, channel names) of a demo montage; net is None for the 10-10 subset."""
    if montage is None:
        return None, standard_channel_names(32 if n_channels is None else n_channels)
    text = str(montage).strip()
    for net in _HD_NETS:
        if text.lower() == net.lower():
            from .io.montage import standard_montage

            names = list(standard_montage(net).ch_names)
            if n_channels is not None and n_channels != len(names):
                raise ValueError(
                    f"n_channels={n_channels} does not fit montage {net!r} "
                    f"({len(names)} channels); leave n_channels out"
                )
            return net, names
    parts = text.split()
    if len(parts) == 2 and parts[0] == "10-10" and parts[1].isdigit():
        n = int(parts[1])
        if n_channels is not None and n_channels != n:
            raise ValueError(f"n_channels={n_channels} contradicts montage {montage!r}")
        return None, standard_channel_names(n)
    raise ValueError(
        f"montage must be '10-10 N' (N = 8..64) or one of {list(_HD_NETS)}, got {montage!r}"
    )


def _net_electrodes(rng, ch_names, net):
    """Electrodes of an EGI net on a random subject (see "High-density nets").

    Returns the recorded positions (n_ch, 3) m, their radial projections onto
    the scalp sphere (where the potentials are computed), centre (3,) m,
    radius m and fiducials (name -> list of 3 floats, m).
    """
    from .io.montage import standard_montage
    from .scalp import fit_scalp_sphere

    template = standard_montage(net)
    fit = fit_scalp_sphere(template, exclude="face")
    radius = float(rng.uniform(0.085, 0.095))
    scale = radius / fit.radius
    center = scale * np.asarray(fit.center) + rng.normal(0.0, 0.002, 3)
    rel = template.pick_channels(ch_names, case_sensitive=True).pos * scale - center
    own = np.linalg.norm(rel, axis=1)
    dirs = rel / own[:, None]
    # jitter as for the 10-10 cap: ~3 mm tangential, ~2 mm radial, about each
    # electrode's own distance from the centre (the net's shape is kept)
    tang = rng.normal(0.0, 0.003, (len(ch_names), 3))
    tang -= np.sum(tang * dirs, axis=1, keepdims=True) * dirs
    rad = own + rng.normal(0.0, 0.002, len(ch_names))
    dirs = _unit(dirs * own[:, None] + tang)
    elec = center + dirs * rad[:, None]
    on_scalp = center + dirs * radius
    fid = template.meta["fiducials"]
    fiducials = {"NAS": fid["Nz"], "LPA": fid["LPA"], "RPA": fid["RPA"]}
    fiducials = {k: (scale * np.asarray(v)).tolist() for k, v in fiducials.items()}
    return elec, on_scalp, center, radius, fiducials


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _sph(polar_deg, azim_deg):
    """Unit vector from polar angle (from +z) and azimuth (from +x toward +y)."""
    t, p = np.deg2rad(polar_deg), np.deg2rad(azim_deg)
    return np.array([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)])


def _slerp(a, b, frac):
    a, b = _unit(a), _unit(b)
    omega = np.arccos(np.clip(a @ b, -1.0, 1.0))
    if omega < 1e-9:
        return a
    return (np.sin((1 - frac) * omega) * a + np.sin(frac * omega) * b) / np.sin(omega)


def _direction(name: str) -> np.ndarray:
    """Ideal-sphere unit direction (x right, y anterior, z up) of a 10-10 label."""
    special = {"Fpz": ("Fp", "z"), "Oz": ("O", "z"), "Iz": None, "F9": None, "F10": None}
    if name == "Iz":
        return _sph(108.0, -90.0)
    if name in ("F9", "F10"):
        return _sph(100.0, 144.0 if name == "F9" else 36.0)
    if name in special:
        row, col = special[name]
    else:
        for prefix in ("Fp", "AF", "FC", "FT", "CP", "TP", "PO", "F", "C", "T", "P", "O"):
            if name.startswith(prefix):
                row, col = prefix, name[len(prefix) :]
                break
        else:  # pragma: no cover - names are from our own list
            raise ValueError(f"unknown 10-10 label: {name!r}")
        row = {"FT": "FC", "T": "C", "TP": "CP"}.get(row, row)
    midline = _sph(abs(_ROWS[row]), 90.0 if _ROWS[row] >= 0 else -90.0)
    if col == "z":
        return midline
    k = int(col)
    right = k % 2 == 0
    az = _RING_AZ[row]
    ring = _sph(72.0, az if right else 180.0 - az)
    if row in ("Fp", "O"):
        return _slerp(midline, ring, 1.0)
    return _slerp(midline, ring, ((k + 1) // 2) / 4.0)


def electrode_directions(names: Sequence[str]) -> np.ndarray:
    """Unit vectors of 10-10 electrodes on an ideal sphere.

    Parameters
    ----------
    names : sequence of str
        10-10 labels from :func:`standard_channel_names`.

    Returns
    -------
    ndarray, shape (n_channels, 3)
        Unit directions from the sphere centre (x right, y anterior, z up).
    """
    return np.array([_direction(n) for n in names])


def _infinite_medium_gain(elec, pos, ori, sigma=0.33):
    """Temporary fallback forward: dipoles in an infinite homogeneous medium, V per A·m.

    Used only when :mod:`exgsrc.forward` lacks ``make_sphere_forward``.
    Shapes: elec (n_ch, 3), pos/ori (n_dip, 3).
    """
    d = elec[:, None, :] - pos[None, :, :]
    dn = np.linalg.norm(d, axis=-1)
    return np.sum(d * ori[None], axis=-1) / (4 * np.pi * sigma * dn**3)


def _sphere_gain(elec, pos, ori, radius, center):
    """Gain (n_ch, n_dip) of fixed dipoles in the 3-shell sphere, V per A·m."""
    try:
        from .forward import SphereModel, make_sphere_forward
        from .source_space import discrete_source_space
    except ImportError:
        return _infinite_medium_gain(elec, pos, ori)
    sphere = SphereModel(
        radii=tuple(float(f * radius) for f in RELATIVE_RADII),
        conductivities=CONDUCTIVITIES,
        center=tuple(float(c) for c in center),
    )
    src = discrete_source_space(pos, ori)
    fwd = make_sphere_forward(elec, src, sphere)
    return np.asarray(fwd.gain)


def _pink_noise(rng, n_series, n_times, sfreq, exponent=1.0, fmin=0.5):
    """Time series with power spectrum ~ 1/f**exponent, unit variance."""
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    scale = np.zeros_like(freqs)
    scale[freqs > 0] = 1.0 / np.maximum(freqs[freqs > 0], fmin) ** (exponent / 2.0)
    spec = rng.standard_normal((n_series, freqs.size)) + 1j * rng.standard_normal(
        (n_series, freqs.size)
    )
    x = np.fft.irfft(spec * scale, n=n_times, axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def simulate_subject(
    rng: np.random.Generator,
    ch_names: Sequence[str],
    conditions: Sequence[str],
    *,
    sfreq: float = 250.0,
    n_trials: int = 40,
    evoked_uv: float = 15.0,
    background_uv: float = 10.0,
    sensor_noise_uv: float = 1.0,
    n_bad: int = 1,
    n_noisy_epochs: int = 3,
    montage: str | None = None,
) -> dict:
    """Simulate one subject's continuous EEG with known dipoles.

    Parameters
    ----------
    rng : numpy.random.Generator
    ch_names : sequence of str
        Electrode labels: 10-10 labels (positions from
        :func:`electrode_directions`), or, with an EGI ``montage``, labels of
        that net (``E1``...; see :func:`exgsrc.io.montage.standard_montage`).
    conditions : sequence of str
        Condition names; names in :data:`DEMO_CONDITIONS` get anatomically
        plausible dipoles, others random ones.
    sfreq : float
        Sampling rate (Hz).
    n_trials : int
        Trials per condition.
    evoked_uv : float
        Peak absolute scalp potential of each evoked dipole (µV, before
        referencing).
    background_uv : float
        RMS of the background activity per channel (µV).
    sensor_noise_uv : float
        RMS of white sensor noise (µV).
    n_bad : int
        Number of bad channels (very noisy), listed in ``bads``.
    n_noisy_epochs : int
        Trials contaminated by a large blink-like transient.
    montage : str | None
        ``None`` or ``"10-10 N"``: the 10-10 cap on the scalp sphere (the
        default, unchanged). ``"GSN-HydroCel-129"`` / ``"GSN-HydroCel-256"``:
        the EGI net's template shape, face and neck electrodes included (see
        the module docstring).

    Returns
    -------
    dict
        ``data`` (n_ch, n_times) V; ``eog`` (n_times,) V; ``sfreq``; ``ch_names``;
        ``elec`` (n_ch, 3) m, the recorded positions; ``elec_on_scalp``
        (n_ch, 3) m, where the potentials were computed (their radial
        projections on the scalp sphere; equal to ``elec`` for the 10-10
        cap); ``center`` (3,) m; ``radius`` m; ``fiducials``;
        ``events`` list of (onset_sample, condition); ``bads``; ``noisy_trials``;
        ``dipoles`` {condition: {pos, ori, moment_nAm, latency, freq}}.
    """
    ch_names = list(ch_names)
    n_ch = len(ch_names)
    net = _parse_montage(montage, None)[0] if montage is not None else None
    if net is not None:
        elec, on_scalp, center, radius, fiducials = _net_electrodes(rng, ch_names, net)
        dirs = _unit(on_scalp - center)
    else:
        radius = float(rng.uniform(0.085, 0.095))
        center = np.array([0.0, 0.0, 0.045]) + rng.normal(0.0, 0.002, 3)
        dirs = electrode_directions(ch_names)
        # jitter: ~3 mm tangential, ~2 mm radial
        tang = rng.normal(0.0, 0.003, (n_ch, 3))
        tang -= np.sum(tang * dirs, axis=1, keepdims=True) * dirs
        rad = radius + rng.normal(0.0, 0.002, n_ch)
        elec = center + dirs * rad[:, None] + tang
        # put the electrodes back on the scalp sphere after the tangential shift
        rel = elec - center
        elec = center + rel / np.linalg.norm(rel, axis=1, keepdims=True) * rad[:, None]
        on_scalp = elec
        fiducials = {
            "NAS": (center + radius * _sph(90.0, 90.0) + [0, 0, -0.02]).tolist(),
            "LPA": (center + radius * _sph(90.0, 180.0) + [0, 0, -0.04]).tolist(),
            "RPA": (center + radius * _sph(90.0, 0.0) + [0, 0, -0.04]).tolist(),
        }

    # trial sequence
    labels = np.repeat(np.arange(len(conditions)), n_trials)
    rng.shuffle(labels)
    isi = rng.uniform(1.0, 1.4, labels.size)
    onsets_s = 2.0 + np.concatenate([[0.0], np.cumsum(isi[:-1])])
    duration = int(np.ceil(onsets_s[-1] + 3.0))
    n_times = int(round(duration * sfreq))
    times = np.arange(n_times) / sfreq
    onsets = np.round(onsets_s * sfreq).astype(int)

    # evoked dipoles
    dipoles = {}
    pos, ori, waves = [], [], []
    for ci, cond in enumerate(conditions):
        if cond in DEMO_CONDITIONS:
            direction, latency, freq = DEMO_CONDITIONS[cond]
            direction = _unit(np.asarray(direction) + rng.normal(0.0, 0.05, 3))
            latency = latency + rng.uniform(-0.01, 0.01)
        else:
            direction = _unit(rng.normal(0.0, 1.0, 3) * [1, 1, 0.5] + [0, 0, 0.6])
            latency, freq = rng.uniform(0.08, 0.15), rng.uniform(4.0, 8.0)
        p = center + SOURCE_FRACTION * radius * direction
        tilt = rng.normal(0.0, 1.0, 3)
        tilt -= (tilt @ direction) * direction
        o = _unit(direction + 0.35 * _unit(tilt))
        pos.append(p)
        ori.append(o)
        dipoles[cond] = {
            "pos": p.tolist(),
            "ori": o.tolist(),
            "latency": float(latency),
            "freq": float(freq),
        }
        wave = np.zeros(n_times)
        width = 0.03
        for on in onsets[labels == ci]:
            t = times - times[on] - latency
            sl = np.abs(t) < 5 * width
            wave[sl] += np.exp(-0.5 * (t[sl] / width) ** 2) * np.cos(2 * np.pi * freq * t[sl])
        waves.append(wave)
    pos, ori = np.array(pos), np.array(ori)
    gain = _sphere_gain(on_scalp, pos, ori, radius, center)  # (n_ch, n_cond)
    moments = evoked_uv * 1e-6 / np.abs(gain).max(axis=0)  # A·m giving evoked_uv peak
    for ci, cond in enumerate(conditions):
        dipoles[cond]["moment_nAm"] = float(moments[ci] * 1e9)
    data = gain @ (moments[:, None] * np.array(waves))

    # background: random cortical 1/f generators + posterior alpha
    n_bg = 40
    bg_dir = _unit(rng.normal(0.0, 1.0, (n_bg, 3)) + [0, 0, 0.5])
    bg_pos = center + radius * rng.uniform(0.5, 0.75, (n_bg, 1)) * bg_dir
    bg_ori = _unit(bg_dir + 0.5 * rng.normal(0.0, 1.0, (n_bg, 3)))
    bg_gain = _sphere_gain(on_scalp, bg_pos, bg_ori, radius, center)
    bg = bg_gain @ _pink_noise(rng, n_bg, n_times, sfreq)
    al_dir = _unit(np.array([[-0.4, -0.85, 0.3], [0.4, -0.85, 0.3]]))
    al_pos = center + 0.7 * radius * al_dir
    al_gain = _sphere_gain(on_scalp, al_pos, al_dir, radius, center)
    envelope = 0.5 + np.abs(_pink_noise(rng, 2, n_times, sfreq, exponent=2.0))
    phase = rng.uniform(0, 2 * np.pi, (2, 1))
    alpha_f = rng.uniform(9.0, 11.0)
    alpha = envelope * np.sin(2 * np.pi * alpha_f * times + phase)
    al = al_gain @ alpha
    bg = bg / np.sqrt(np.mean(bg**2)) + 0.6 * al / np.sqrt(np.mean(al**2))
    bg *= background_uv * 1e-6 / np.sqrt(np.mean(bg**2))
    data = data + bg + rng.normal(0.0, sensor_noise_uv * 1e-6, (n_ch, n_times))

    # EOG channel and blink artefacts in a few trials
    eog = rng.normal(0.0, 5e-6, n_times) + 0.3 * bg[0]
    noisy = rng.choice(labels.size, size=min(n_noisy_epochs, labels.size), replace=False)
    frontal = np.clip(dirs[:, 1], 0.0, None) ** 2  # frontal channels see blinks
    for tr in np.sort(noisy):
        t = times - times[onsets[tr]] - rng.uniform(0.05, 0.3)
        blink = 250e-6 * np.exp(-0.5 * (t / 0.06) ** 2)
        data += frontal[:, None] * blink[None, :] + 20e-6 * blink[None, :] / 250e-6
        eog += 2.0 * blink

    # bad channels: very noisy
    bad_idx = rng.choice(n_ch, size=n_bad, replace=False) if n_bad else np.array([], int)
    for b in bad_idx:
        data[b] += rng.normal(0.0, 60e-6, n_times)

    return {
        "data": data,
        "eog": eog,
        "sfreq": float(sfreq),
        "ch_names": ch_names,
        "elec": elec,
        "elec_on_scalp": on_scalp,
        "center": center,
        "radius": radius,
        "fiducials": fiducials,
        "events": [(int(o), conditions[int(c)]) for o, c in zip(onsets, labels, strict=True)],
        "bads": [ch_names[int(b)] for b in np.sort(bad_idx)],
        "noisy_trials": [int(t) for t in np.sort(noisy)],
        "dipoles": dipoles,
    }


# ---------------------------------------------------------------------------
# file writing (the only I/O in this module)


def _write_json(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _write_tsv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    lines = ["\t".join(header)]
    for row in rows:
        lines.append("\t".join(_fmt(v) for v in row))
    write_text_atomic(path, "\n".join(lines) + "\n")


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _write_edf(path: Path, data_uv: np.ndarray, names, sfreq: float, dims) -> None:
    from edfio import Edf, EdfSignal

    signals = []
    for x, name, dim in zip(data_uv, names, dims, strict=True):
        lo = float(np.floor(x.min())) - 1.0
        hi = float(np.ceil(x.max())) + 1.0
        signals.append(
            EdfSignal(
                x,
                sampling_frequency=sfreq,
                label=name,
                physical_dimension=dim,
                physical_range=(lo, hi),
                transducer_type="AgAgCl electrode",
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Edf(signals, data_record_duration=1.0).write(tmp)
    os.replace(tmp, path)


def demo_subject_files(root: str | os.PathLike, subject: str, task: str = DEMO_TASK):
    """Paths written by :func:`make_demo_bids` for one subject.

    Parameters
    ----------
    root : path-like
        BIDS root.
    subject : str
        Label without ``sub-``.
    task : str

    Returns
    -------
    dict of str -> Path
        Keys ``eeg``, ``sidecar``, ``channels``, ``events``, ``electrodes``,
        ``coordsystem``.
    """
    d = Path(root) / f"sub-{subject}" / "eeg"
    base = f"sub-{subject}_task-{task}"
    return {
        "eeg": d / f"{base}_eeg.edf",
        "sidecar": d / f"{base}_eeg.json",
        "channels": d / f"{base}_channels.tsv",
        "events": d / f"{base}_events.tsv",
        "electrodes": d / f"sub-{subject}_space-CapTrak_electrodes.tsv",
        "coordsystem": d / f"sub-{subject}_space-CapTrak_coordsystem.json",
    }


def make_demo_bids(
    root: str | os.PathLike,
    n_subjects: int = 6,
    conditions: Sequence[str] = ("auditory", "visual", "somatosensory"),
    seed: int = 0,
    *,
    n_channels: int | None = None,
    sfreq: float = 250.0,
    n_trials: int = 40,
    evoked_uv: float = 15.0,
    background_uv: float = 10.0,
    task: str = DEMO_TASK,
    montage: str | None = None,
) -> Path:
    """Write the simulated demo cohort as an EEG-BIDS dataset.

    Parameters
    ----------
    root : path-like
        BIDS root to create (existing files are overwritten).
    n_subjects : int
        Number of subjects (labels ``01``, ``02``, ...).
    conditions : sequence of str
        Condition names (``trial_type`` values).
    seed : int
        Seed of the random generator; the same seed gives the same files.
    n_channels : int | None
        EEG channels of the 10-10 montage (8-64; default 32), plus one EOG
        channel. Leave out with an EGI ``montage`` (its size is fixed).
    sfreq : float
        Sampling rate (Hz).
    n_trials : int
        Trials per condition.
    evoked_uv, background_uv : float
        Peak evoked and RMS background scalp amplitudes (µV).
    task : str
        BIDS task label.
    montage : str | None
        ``"10-10 N"`` (default ``"10-10 32"``, i.e. ``n_channels``; output
        unchanged by this option), ``"GSN-HydroCel-129"`` (129 channels: E1-E128
        and the vertex reference Cz) or ``"GSN-HydroCel-256"`` (E1-E256), with
        cheek and neck electrodes (see the module docstring). An EGI montage is
        recorded as ``montage`` in the truth file.

    Returns
    -------
    Path
        Path of ``code/demo_truth.json`` (the ground truth).
    """
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
    conditions = list(conditions)
    if not conditions or len(set(conditions)) != len(conditions):
        raise ValueError(f"conditions must be non-empty and unique, got {conditions}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    net, names = _parse_montage(montage, n_channels)
    truth = {
        "task": task,
        "seed": seed,
        "relative_radii": list(RELATIVE_RADII),
        "conductivities": list(CONDUCTIVITIES),
        "source_fraction": SOURCE_FRACTION,
        "conditions": conditions,
        "subjects": {},
    }
    if net is not None:  # (absent for the 10-10 cap, whose files stay as they were)
        truth["montage"] = net
    participants = []
    for i in range(n_subjects):
        sub = f"{i + 1:02d}"
        rng = np.random.default_rng([seed, i])
        sim = simulate_subject(
            rng,
            names,
            conditions,
            sfreq=sfreq,
            n_trials=n_trials,
            evoked_uv=evoked_uv,
            background_uv=background_uv,
            n_bad=1 + (i % 2),
            montage=net,
        )
        files = demo_subject_files(root, sub, task)
        all_names = names + ["VEOG"]
        data_uv = np.vstack([sim["data"], sim["eog"][None]]) * 1e6
        _write_edf(files["eeg"], data_uv, all_names, sfreq, ["uV"] * len(all_names))
        _write_json(
            files["sidecar"],
            {
                "TaskName": task,
                "TaskDescription": "Simulated evoked responses (exgsrc demo cohort).",
                "SamplingFrequency": sfreq,
                "PowerLineFrequency": 50,
                "EEGReference": "none (simulated reference-free potentials)",
                "EEGChannelCount": len(names),
                "EOGChannelCount": 1,
                "SoftwareFilters": "n/a",
                "RecordingType": "continuous",
                "RecordingDuration": data_uv.shape[1] / sfreq,
            },
        )
        ch_rows = []
        for n in all_names:
            is_eog = n == "VEOG"
            bad = n in sim["bads"]
            ch_rows.append(
                (
                    n,
                    "EOG" if is_eog else "EEG",
                    "uV",
                    sfreq,
                    "bad" if bad else "good",
                    "simulated high noise" if bad else "n/a",
                )
            )
        _write_tsv(
            files["channels"],
            ("name", "type", "units", "sampling_frequency", "status", "status_description"),
            ch_rows,
        )
        el_rows = [(n, *p) for n, p in zip(names, sim["elec"].tolist(), strict=True)]
        _write_tsv(files["electrodes"], ("name", "x", "y", "z"), el_rows)
        _write_json(
            files["coordsystem"],
            {
                "EEGCoordinateSystem": "CapTrak",
                "EEGCoordinateUnits": "m",
                "EEGCoordinateSystemDescription": (
                    "RAS, origin between the ears (simulated)."
                    if net is None
                    else f"RAS: x through RPA, y through the nasion, z up (simulated {net})."
                ),
                "AnatomicalLandmarkCoordinates": sim["fiducials"],
                "AnatomicalLandmarkCoordinateSystem": "CapTrak",
                "AnatomicalLandmarkCoordinateUnits": "m",
            },
        )
        values = {c: k + 1 for k, c in enumerate(conditions)}
        ev_rows = [(on / sfreq, 0.0, cond, values[cond], on) for on, cond in sim["events"]]
        _write_tsv(
            files["events"], ("onset", "duration", "trial_type", "value", "sample"), ev_rows
        )
        participants.append((f"sub-{sub}", round(sim["radius"] * 1000, 1)))
        truth["subjects"][sub] = {
            "center": sim["center"].tolist(),
            "radius": sim["radius"],
            "bads": sim["bads"],
            "noisy_trials": sim["noisy_trials"],
            "dipoles": sim["dipoles"],
        }
    _write_tsv(root / "participants.tsv", ("participant_id", "head_radius_mm"), participants)
    _write_json(
        root / "participants.json",
        {"head_radius_mm": {"Description": "Simulated scalp sphere radius", "Units": "mm"}},
    )
    (root / "README").write_text(
        "exgsrc demo cohort: simulated EEG with known dipoles (see code/demo_truth.json).\n"
    )
    truth_path = root / "code" / "demo_truth.json"
    _write_json(truth_path, truth)
    _write_json(
        root / "dataset_description.json",
        {
            "Name": "exgsrc demo cohort (simulated)",
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "GeneratedBy": [
                {"Name": "exgsrc.simulate.make_demo_bids", "Description": f"seed {seed}"}
            ],
        },
    )
    return truth_path
