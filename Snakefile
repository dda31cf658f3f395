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


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/headmodel.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/inverse.smk"
include: "workflow/rules/resolution.smk"
include: "workflow/rules/cohort.smk"


if os.path.exists(os.path.join(workflow.basedir, "workflow/rules/report.smk")):

    include: "workflow/rules/report.smk"


# cheap steps: run in the main process on clusters (see workflow/profiles/slurm)
localrules:
    all,
    dataset_description,
    qc_table,


rule all:
    input:
        all_targets(),
    default_target: True
