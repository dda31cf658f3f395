# Across the cohort: grand averages per condition (contrasts included) and method, the QC
# table, and (demo) the localisation error of the known dipoles (conditions only). Failed
# subjects (failed-status files) are skipped and listed, so one bad subject never stops the
# cohort results.


rule grand_average:
    input:
        lambda wc: stc_files(cond=wc.cond, method=wc.method),
    output:
        group_path(f"task-{TASK}_cond-{{cond}}_desc-{{method}}_grandavg.nc"),
    params:
        subjects=SUBJECTS,
    log:
        log_path("grand_average", "cond-{cond}_desc-{method}"),
    benchmark:
        bench_path("grand_average", "cond-{cond}_desc-{method}")
    script:
        "../scripts/grand_average.py"


rule qc_table:
    input:
        montage=expand(sub_path("montage.nc"), subject=SUBJECTS),
        epochs=expand(sub_path("epo.nc"), subject=SUBJECTS),
        cov=expand(sub_path("cov.nc"), subject=SUBJECTS),
        snr=expand(sub_path("snr.nc"), subject=SUBJECTS),
        stc=stc_files(),
        resolution=(
            expand(sub_path("resolution.nc"), subject=SUBJECTS)
            if config["resolution"]["enabled"]
            else []
        ),
    output:
        report(
            group_path("qc.tsv"),
            caption="../report/qc_table.rst",
            category="QC reports",
            subcategory="Cohort",
            labels={"report": "QC table"},
        ),
    params:
        subjects=SUBJECTS,
        conditions=COND_LABELS,
        methods=METHODS,
        # labels of the contrasts (no epochs of their own); absent without contrasts
        **({"contrasts": list(CONTRAST_LABELS)} if CONTRAST_LABELS else {}),
        truth=demo_truth() if IS_DEMO else None,
    log:
        log_path("qc_table", "qc"),
    benchmark:
        bench_path("qc_table", "qc")
    script:
        "../scripts/qc_table.py"


if IS_DEMO:

    rule localisation_error:
        input:
            stc=stc_files(labels=EVENT_COND_LABELS),
            truth=demo_truth(),
        output:
            report(
                group_path(f"task-{TASK}_localisation.tsv"),
                caption="../report/localisation.rst",
                category="QC reports",
                subcategory="Cohort",
                labels={"report": "demo localisation error"},
            ),
        params:
            subjects=SUBJECTS,
            conditions=EVENT_COND_LABELS,
            methods=METHODS,
        log:
            log_path("localisation_error", "localisation"),
        benchmark:
            bench_path("localisation_error", "localisation")
        script:
            "../scripts/localisation_error.py"
