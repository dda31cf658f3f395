# exgsrc: EEG source imaging for whole cohorts, from BIDS to labelled netCDF.
#
#   .venv/bin/snakemake --cores all                       # the embedded demo cohort
#   .venv/bin/snakemake --cores all --config bids_root=/path/to/bids
#   .venv/bin/snakemake --cores all --configfile config/eeglab_squares.yaml
#
# Layout follows the Snakemake workflow catalog: workflow/rules, workflow/scripts,
# workflow/schemas, config/config.yaml.

import os

from snakemake.utils import min_version, validate

min_version("8.0")


# The working directory's config/config.yaml (the catalog's convention), else the
# defaults shipped beside this Snakefile (snakemake -s <checkout>/Snakefile --directory
# <elsewhere>); --configfile and --config extend either.
_DEFAULT_CONFIG = (
    "config/config.yaml"
    if os.path.exists("config/config.yaml")
    else os.path.join(workflow.basedir, "config", "config.yaml")
)


configfile: _DEFAULT_CONFIG


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/headmodel.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/inverse.smk"
include: "workflow/rules/resolution.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/statistics.smk"


include: "workflow/rules/report.smk"


# cheap steps: run in the main process on clusters (see profiles/slurm)
localrules:
    all,
    dataset_description,
    qc_table,


onstart:
    _note = acquire_output_lock(OUT, os.getcwd())
    if _note:
        logger.warning(f"exgsrc: {_note}")
    _stale = remove_stale_temporaries(OUT)
    if _stale:
        logger.info(f"exgsrc: removed {len(_stale)} half-written file(s) of killed jobs")


onsuccess:
    release_output_lock(OUT)
    report_run_outcome(raise_if_none_succeeded=True)


onerror:
    release_output_lock(OUT)
    report_run_outcome(raise_if_none_succeeded=False)


rule all:
    input:
        all_targets(),
    default_target: True
