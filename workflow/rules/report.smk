# QC reports: one self-contained HTML per subject, one for the cohort (exgsrc.report).
# Both are flagged with report(...) so `snakemake --report report.html` includes them.
# Uses from common.smk: OUT, TASK, SUBJECTS, COND_LABELS, METHODS, IS_DEMO, sub_path,
# group_path, log_path, bench_path, demo_truth, REPORT_TARGETS.


def subject_report_path(subject="{subject}"):
    """<output>/sub-<label>/sub-<label>_task-<t>_report.html"""
    return str(OUT / f"sub-{subject}" / f"sub-{subject}_task-{TASK}_report.html")


def subject_summary_path(subject="{subject}"):
    """The cohort table's row of one subject (JSON), next to its report."""
    return str(OUT / f"sub-{subject}" / f"sub-{subject}_task-{TASK}_report.json")


def report_subject_inputs(wildcards):
    # plain string substitution, no expand(): called once per subject job, which at
    # 1 000 subjects made expand() a visible part of building the DAG
    sub = wildcards.subject
    kinds = ["montage", "headmodel", "src", "fwd", "epo", "cov", "inv", "snr"]
    names = ["montage", "headmodel", "src", "fwd", "epochs", "cov", "inv", "snr"]
    files = {n: sub_path(f"{k}.nc").replace("{subject}", sub) for n, k in zip(names, kinds)}
    files["evokeds"] = [
        sub_path(f"cond-{cond}_ave.nc").replace("{subject}", sub) for cond in COND_LABELS
    ]
    files["stcs"] = stc_files(subject=sub)
    if config["resolution"]["enabled"]:
        files["resolution"] = sub_path("resolution.nc").replace("{subject}", sub)
    return files


rule report_subject:
    input:
        unpack(report_subject_inputs),
    output:
        html=report(
            subject_report_path(),
            caption="../report/subject_report.rst",
            category="QC reports",
            subcategory="Subjects",
            labels={"subject": "sub-{subject}", "report": "subject QC"},
        ),
        summary=subject_summary_path(),
    params:
        task=TASK,
        conditions=COND_LABELS,
        truth=demo_truth() if IS_DEMO else None,
        report=config["report"],
    log:
        log_path("report_subject"),
    benchmark:
        bench_path("report_subject")
    script:
        "../scripts/report_subject.py"


rule report_cohort:
    input:
        summaries=expand(subject_summary_path(), subject=SUBJECTS),
        grandavg=[
            group_path(f"task-{TASK}_cond-{c}_desc-{m}_grandavg.nc")
            for c in COND_LABELS
            for m in METHODS
        ],
        statistics=statistics_files(),  # cohort tests (statistics.smk), found beside the report
        # the subjects' estimates (spread across subjects, their own peaks) and source
        # spaces (the surface's triangles): order subject, condition, method
        stcs=stc_files(),
        src=expand(sub_path("src.nc"), subject=SUBJECTS),
    output:
        html=report(
            group_path("cohort_report.html"),
            caption="../report/cohort_report.rst",
            category="QC reports",
            subcategory="Cohort",
            labels={"report": "cohort QC"},
        ),
    params:
        task=TASK,
        conditions=list(COND_LABELS),
        methods=METHODS,
        subjects=SUBJECTS,
        truth=demo_truth() if IS_DEMO else None,
        report=config["report"],
        shell_fraction=config["source_space"]["radius_fraction"],
    log:
        log_path("report_cohort", "cohort"),
    benchmark:
        bench_path("report_cohort", "cohort")
    script:
        "../scripts/report_cohort.py"


REPORT_TARGETS += expand(subject_report_path(), subject=SUBJECTS)
REPORT_TARGETS.append(group_path("cohort_report.html"))
