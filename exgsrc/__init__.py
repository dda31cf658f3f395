"""exgsrc: reproducible EEG source imaging for whole cohorts.

The numerical core (``source_space``, ``forward``, ``covariance``, ``linalg``,
``inverse``, ``eloreta``, ``resolution``, ``snr``) is plain numpy/scipy. Import
submodules explicitly (``from exgsrc.forward import make_sphere_forward``);
nothing heavy is imported here, so that every Snakemake job starts fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
