# Cohort statistics (config `statistics`): one sign-flip permutation test per configured test,
# over the subjects' source estimates of one inverse method. Runs after the cohort's source
# estimates; failed subjects are skipped and listed (fewer than 3 usable: the step fails,
# recorded by the failure policy, and the other cohort outputs are still written).

from exgsrc.config import check_statistics

_stats_errors = check_statistics(config, COND_LABELS, len(SUBJECTS))
if _stats_errors:
    raise ConfigError("; ".join(_stats_errors))

# name -> test (validated; conditions as path-safe labels)
STAT_TESTS = {
    t["name"]: dict(
        t,
        conditions=[
            c if c in COND_LABELS else next(k for k, v in COND_LABELS.items() if v == c)
            for c in t["conditions"]
        ],
    )
    for t in config["statistics"]
}


def _stats_baseline():
    """The baseline window [b0, b1] (s) of `baseline` tests: epochs.baseline, else [tmin, 0]."""
    ep = config["epochs"]
    b = ep["baseline"] if ep["baseline"] is not None else [None, 0.0]
    return [ep["tmin"] if b[0] is None else b[0], ep["tmax"] if b[1] is None else b[1]]


def stats_path(name="{test}"):
    return group_path(f"task-{TASK}_stat-{name}_stats.nc")


def statistics_files():
    return [stats_path(name) for name in STAT_TESTS]


def _stats_inputs(wildcards):
    test = STAT_TESTS[wildcards.test]
    return {
        "stc": [f for c in test["conditions"] for f in stc_files(cond=c, method=test["method"])],
        "src": expand(sub_path("src.nc"), subject=SUBJECTS),
    }


rule statistics:
    input:
        unpack(_stats_inputs),
    output:
        stats_path(),
    params:
        subjects=SUBJECTS,
        test=lambda wc: STAT_TESTS[wc.test],
        condition_names=lambda wc: [COND_LABELS[c] for c in STAT_TESTS[wc.test]["conditions"]],
        epoch_window=[config["epochs"]["tmin"], config["epochs"]["tmax"]],
        baseline=_stats_baseline(),
    wildcard_constraints:
        test="[A-Za-z0-9]+",
    log:
        log_path("statistics", "stat-{test}"),
    benchmark:
        bench_path("statistics", "stat-{test}")
    script:
        "../scripts/statistics.py"
