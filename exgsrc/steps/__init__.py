"""Workflow steps: one module per rules file of ``workflow/rules/``.

Each ``step_*`` function does one workflow step: it reads the step's input files
through :mod:`exgsrc.store`, calls the library and writes its outputs through
``ctx.write`` (atomic, with provenance). The workflow's scripts are one line,
``run_step(snakemake, step_x)`` (:mod:`exgsrc.steps._run`).

================  ==================================================  ===================
module            steps                                               rules file
================  ==================================================  ===================
``demo``          demo cohort, ``dataset_description.json``           ``demo.smk``
``headmodel``     montage, sphere head model, source space, forward   ``headmodel.smk``
``preprocess``    epochs, noise covariance, evoked responses          ``preprocess.smk``
``inverse``       inverse operator, source estimates, SNR             ``inverse.smk``
``resolution``    PSF/CTF resolution metrics                          ``resolution.smk``
``cohort``        grand averages, QC table, localisation error        ``cohort.smk``
``report``        subject and cohort QC reports                       ``report.smk``
================  ==================================================  ===================

Importing this package imports nothing else: each script imports only the module
of its own stage, so a job pays only for the libraries its step uses.
"""
