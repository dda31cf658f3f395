"""Cohort statistics (config ``statistics``, rule ``statistics``).

The end-to-end test runs config/test_stats.yaml (6 demo subjects, auditory +
visual, sLORETA, ico grade 3, no resolution matrices) up to the test's output:
a paired cluster test auditory - visual must find clusters at the true dipoles
(positive at the auditory one, negative at the visual one) and none far from them;
a baseline cluster test of auditory one cluster at the auditory dipole.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from exgsrc.config import check_statistics, load_schema, validate_config

ROOT = Path(__file__).resolve().parents[1]
STATS_CFG = ROOT / "config" / "test_stats.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
TEST = {"name": "audvis", "kind": "paired", "conditions": ["auditory", "visual"]}
CONDS = {"auditory": "auditory", "visual": "visual"}
#: Distance (m) within which a significant cluster must reach its true dipole.
NEAR = 0.015
#: No significant cluster's largest effect may be farther than this (m) from its dipole.
FAR = 0.02


def _config(*tests, **over):
    cfg = {"inverse": {"methods": ["sLORETA"]}, "statistics": list(tests), **over}
    return validate_config(cfg, load_schema(SCHEMA))


def _test(**kw):
    return {**TEST, "method": "sLORETA", **kw}


# ----------------------------------------------------------------- config (DAG time, no run)


def test_statistics_default_is_empty():
    assert validate_config({}, load_schema(SCHEMA))["statistics"] == []


def test_statistics_defaults_filled():
    t = _config(_test())["statistics"][0]
    assert t["test"] == "cluster" and t["n_permutations"] == 1024 and t["seed"] == 0
    assert t["tail"] == 0 and t["threshold"] is None and t["tmin"] == 0.0 and t["tmax"] is None


@pytest.mark.parametrize(
    ("test", "over", "message"),
    [
        (
            _test(conditions=["auditory", "visul"]),
            {},
            "config statistics[0].conditions: 'visul' is not a condition (have: auditory, visual)",
        ),
        (
            _test(method="dSPM"),
            {},
            "config statistics[0].method: 'dSPM' is not in inverse.methods (have: sLORETA)",
        ),
        (
            _test(tmin=0.1, tmax=0.9),
            {},
            "config statistics[0].tmin/tmax=[0.1, 0.9]: the window must be inside the epoch "
            "[epochs.tmin, epochs.tmax] = [-0.2, 0.5] with tmin < tmax",
        ),
        (
            _test(tmin=-0.5),
            {},
            "config statistics[0].tmin/tmax=[-0.5, None]: the window must be inside the epoch",
        ),
        (
            _test(kind="baseline"),
            {},
            "config statistics[0].conditions: kind 'baseline' needs 1 condition(s) [A]",
        ),
        (
            _test(kind="baseline", conditions=["auditory"], tmin=-0.1),
            {},
            "config statistics[0].tmin=-0.1: a baseline test's window must start after the end "
            "of epochs.baseline (0.0)",
        ),
    ],
)
def test_check_statistics_one_line_errors(test, over, message):
    errors = check_statistics(_config(test, **over), CONDS, 6)
    assert len(errors) == 1, errors
    assert errors[0].startswith(message), errors
    assert "\n" not in errors[0]


def test_check_statistics_duplicates_and_subjects():
    cfg = _config(_test(), _test())
    assert check_statistics(cfg, CONDS, 6) == [
        "config statistics[1].name: 'audvis' is already the name of statistics[0]"
    ]
    errors = check_statistics(_config(_test()), CONDS, 2)
    assert errors == [
        "config statistics[0]: a cohort test needs at least 3 subjects, the cohort has 2"
    ]
    assert check_statistics(_config(_test(conditions=["auditory", "visual"])), CONDS, 3) == []


def test_schema_rejects_unknown_kind_and_test():
    from exgsrc.config import ConfigError

    with pytest.raises(ConfigError, match=r"config statistics\.0\.kind: 'twosample'"):
        _config(_test(kind="twosample"))
    with pytest.raises(ConfigError, match=r"config statistics\.0\.test: 'anova'"):
        _config(_test(test="anova"))


# ----------------------------------------------------------------- the step's building blocks


def _ico_adjacency(grade=2):
    from exgsrc.source_space import ico_source_space
    from exgsrc.stats import source_adjacency

    src = ico_source_space(grade, 0.07)
    return src, source_adjacency(src)


@pytest.mark.parametrize("kind", ["cluster", "tfce", "tmax", "fdr"])
def test_run_test_finds_planted_effects(kind):
    """Every test kind gives a cluster table whose significant clusters are the planted ones."""
    from exgsrc.steps.statistics import run_test, summarise_clusters

    src, adj = _ico_adjacency()
    rng = np.random.default_rng(1)
    n, T, S = 8, 12, src.n_sources
    X = rng.normal(size=(n, T, S))
    X[:, 4:8, 0] += 6.0
    X[:, 4:8, list(adj[[0]].indices)] += 6.0  # the source and its neighbours
    times = np.arange(T) * 0.004
    test = {
        "test": kind,
        "tail": 0,
        "n_permutations": 256,
        "seed": 0,
        "threshold": None,
        "tfce_start": None,
        "tfce_step": None,
        "alpha": 0.05,
    }
    ds = run_test(X, adj, test, times)
    assert ds["t_obs"].dims == ("time", "source")
    p = ds["cluster_p_value"].values
    sig = np.flatnonzero(p < 0.05) + 1
    assert sig.size >= 1
    s = summarise_clusters(ds["cluster_label"].values, ds["t_obs"].values, times, src.pos)
    planted = {0, *adj[[0]].indices.tolist()}
    hits = ds["cluster_label"].values[4:8][:, sorted(planted)]
    assert np.isin(hits, sig).any()  # the planted effect is found
    if kind == "fdr":
        return  # FDR bounds the proportion of false discoveries, not their presence
    for k in sig:  # family-wise tests: nothing else
        assert int(s["peak_source"][k - 1]) in planted
        assert 0.016 - 1e-9 <= s["peak_time"][k - 1] <= 0.028 + 1e-9


def test_baseline_and_paired_data():
    from exgsrc.steps.statistics import statistic_data

    times = np.linspace(-0.1, 0.2, 4)  # -0.1, 0, 0.1, 0.2
    a = np.array([[1.0, 1.0, 5.0, 7.0]])
    b = np.array([[0.0, 1.0, 2.0, 3.0]])
    X = statistic_data([[a, b]], "paired", times, (0.1, 0.2))
    assert X.shape == (1, 2, 1) and np.allclose(X[0, :, 0], [3.0, 4.0])
    X = statistic_data([[a]], "baseline", times, (0.1, 0.2), baseline=(-0.1, 0.0))
    assert np.allclose(X[0, :, 0], [4.0, 6.0])
    with pytest.raises(ValueError, match="has no sample"):
        statistic_data([[a, b]], "paired", times, (0.3, 0.4))


# ----------------------------------------------------------------- workflow


def _dry_run(tmp_path, cfg: dict):
    from test_workflow import snakemake

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = snakemake(tmp_path, "-n", configfile=path, check=False, timeout=300)
    assert res.returncode != 0
    return res.stdout + res.stderr


def _stats_cfg(**test):
    cfg = yaml.safe_load(STATS_CFG.read_text())
    cfg["statistics"] = [{**cfg["statistics"][0], **test}]
    return cfg


@pytest.mark.workflow
def test_dag_errors_are_one_line(tmp_path):
    out = _dry_run(tmp_path, _stats_cfg(conditions=["auditory", "visul"]))
    assert (
        "config statistics[0].conditions: 'visul' is not a condition (have: auditory, visual)"
        in out
    )
    out = _dry_run(tmp_path, _stats_cfg(tmax=0.8))
    assert "config statistics[0].tmin/tmax=[0.05, 0.8]: the window must be inside the epoch" in out
    tiny = _stats_cfg()
    tiny["demo"]["n_subjects"] = 2
    out = _dry_run(tmp_path, tiny)
    assert "config statistics[0]: a cohort test needs at least 3 subjects, the cohort has 2" in out


@pytest.mark.workflow
def test_dry_run_plans_one_statistics_job(tmp_path):
    from test_workflow import _rule_counts, snakemake

    res = snakemake(tmp_path, "-n", "--quiet", "rules", configfile=STATS_CFG)
    counts = _rule_counts(res.stdout)
    assert counts["statistics"] == 2
    assert counts["source_estimate"] == 12  # 6 subjects x 2 conditions x 1 method
    # no tests configured: no statistics job
    res = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert "statistics" not in _rule_counts(res.stdout)


@pytest.fixture(scope="module")
def stats_run(tmp_path_factory):
    from test_workflow import snakemake

    wd = tmp_path_factory.mktemp("wfstats")
    targets = [f"results/group/task-demo_stat-{n}_stats.nc" for n in ("audvis", "aud")]
    snakemake(wd, "--config", "on_error=raise", "--", *targets, configfile=STATS_CFG)
    return wd


def _truth(wd):
    return json.loads((wd / "resources" / "demo_bids" / "code" / "demo_truth.json").read_text())


@pytest.mark.workflow
def test_paired_cluster_test_finds_the_true_dipoles(stats_run):
    from exgsrc.store import open_dataset

    ds = open_dataset(stats_run / "results" / "group" / "task-demo_stat-audvis_stats.nc")
    a = ds.attrs
    assert a["exgsrc_status"] == "ok"
    assert a["subjects"] == ["01", "02", "03", "04", "05", "06"] and a["failed_subjects"] == {}
    assert a["kind"] == "paired" and a["conditions"] == ["auditory", "visual"]
    assert a["method"] == "sLORETA" and a["stat_test"] == "cluster"
    assert list(a["window"]) == [0.05, 0.2] and a["seed"] == 0 and a["tail"] == 0
    assert a["exhaustive"] == 1 and a["n_permutations"] == 32  # 2**(6 - 1) sign flips
    assert np.isclose(a["threshold"], 2.5705818, atol=1e-6)  # t(5) at p 0.025
    for v in ("t_obs", "cluster_label", "significant", "mean_difference"):
        assert ds[v].dims == ("time", "source"), v
    for c in "xyz":
        assert ds[c].dims == ("source",)
    times = ds["time"].values
    assert times[0] >= 0.05 - 1e-9 and times[-1] <= 0.2 + 1e-9
    truth = _truth(stats_run)["subjects"]
    dip = {
        c: np.mean([truth[s]["dipoles"][c]["pos"] for s in a["subjects"]], axis=0)
        for c in ("auditory", "visual")
    }
    pos = np.stack([ds[c].values for c in "xyz"], axis=1)
    p = ds["cluster_p_value"].values
    sig = np.flatnonzero(p < 0.05) + 1
    labels = ds["cluster_label"].values
    found, report = {}, []
    for k in sig:
        src = np.unique(np.nonzero(labels == k)[1])
        sign = np.sign(ds["cluster_peak_t"].values[k - 1])
        cond = "auditory" if sign > 0 else "visual"  # auditory - visual
        d_min = float(np.min(np.linalg.norm(pos[src] - dip[cond], axis=1)))
        peak = np.array([ds[f"cluster_effect_peak_{c}"].values[k - 1] for c in "xyz"])
        d_peak = float(np.linalg.norm(peak - dip[cond]))
        report.append(
            (int(k), cond, float(p[k - 1]), round(d_min * 1e3, 1), round(d_peak * 1e3, 1))
        )
        assert d_peak < FAR, report  # no significant cluster away from the dipoles
        found[cond] = min(found.get(cond, np.inf), max(d_min, d_peak))
    # (cluster, dipole, p, nearest cluster source to the dipole mm, largest effect to it mm)
    print("significant clusters:", report)
    assert set(found) == {"auditory", "visual"}, report
    assert all(d <= NEAR for d in found.values()), report


@pytest.mark.workflow
def test_baseline_cluster_test_finds_the_auditory_dipole(stats_run):
    """auditory vs its pre-stimulus baseline: one significant cluster, at the dipole."""
    from exgsrc.store import open_dataset

    ds = open_dataset(stats_run / "results" / "group" / "task-demo_stat-aud_stats.nc")
    assert ds.attrs["kind"] == "baseline" and list(ds.attrs["baseline"]) == [-0.2, 0.0]
    truth = _truth(stats_run)["subjects"]
    dip = np.mean([truth[s]["dipoles"]["auditory"]["pos"] for s in ds.attrs["subjects"]], axis=0)
    p = ds["cluster_p_value"].values
    sig = np.flatnonzero(p < 0.05)
    assert sig.size >= 1
    for i in sig:
        assert ds["cluster_peak_t"].values[i] > 0  # activity above baseline
        peak = np.array([ds[f"cluster_effect_peak_{c}"].values[i] for c in "xyz"])
        assert np.linalg.norm(peak - dip) < NEAR, (i, p[i], np.linalg.norm(peak - dip))


@pytest.mark.workflow
def test_statistics_section_of_cohort_report(stats_run):
    from exgsrc.report.statistics import statistics_sections

    html = str(
        statistics_sections(stats_run / "results" / "group" / "cohort_report.html")  # its folder
    )
    assert 'id="statistics"' in html and "audvis" in html and "aud:" in html
    assert "auditory minus visual" in html and "auditory minus its baseline" in html
    assert html.count('alt="statistics cluster') >= 2
    assert "significant cluster(s)" in html


def _few_subjects_failure(stats_run, folder):
    """Run the step with failed-status estimates for all but 2 subjects; its output path."""
    from exgsrc.steps._run import run_step
    from exgsrc.steps.statistics import step_statistics
    from exgsrc.store import write_failed

    folder.mkdir(parents=True, exist_ok=True)
    subjects = ["01", "02", "03", "04", "05", "06"]
    res = stats_run / "results"
    stc = []
    for cond in ("auditory", "visual"):
        for s in subjects:
            name = f"sub-{s}_task-demo_cond-{cond}_desc-sLORETA_stc.nc"
            dst = folder / name
            if s in ("01", "02"):
                shutil.copy(res / f"sub-{s}" / "eeg" / name, dst)
            else:
                write_failed(dst, "simulated failure")
            stc.append(str(dst))
    src = [str(res / f"sub-{s}" / "eeg" / f"sub-{s}_task-demo_src.nc") for s in subjects]
    test = yaml.safe_load(STATS_CFG.read_text())["statistics"][0]
    test = _config(test)["statistics"][0]
    out = folder / "stats.nc"
    fake = SimpleNamespace(
        input=SimpleNamespace(stc=stc, src=src),
        output=[str(out)],
        params=SimpleNamespace(
            subjects=subjects,
            test=test,
            condition_names=["auditory", "visual"],
            epoch_window=[-0.2, 0.5],
            baseline=[-0.2, 0.0],
        ),
        wildcards={"test": "audvis"},
        config={"on_error": "record"},
        rule="statistics",
        log=[str(folder / "stats.log")],
    )
    run_step(fake, step_statistics)
    return out


@pytest.mark.workflow
def test_fewer_than_3_usable_subjects_fails_the_step(stats_run, tmp_path):
    """Failed-status estimates leave 2 subjects: the step records a clear failure."""
    from exgsrc.store import read_status

    ok, why = read_status(_few_subjects_failure(stats_run, tmp_path))
    assert not ok
    assert "2 usable subject(s), a cohort test needs at least 3" in why
    assert "sub-03: sub-03_task-demo_cond-auditory_desc-sLORETA_stc.nc: simulated failure" in why


# ----------------------------------------------------------------- the cohort report


def _statistics_section(html: str) -> str:
    sections = re.findall(r'<section id="statistics">(.*?)</section>', html, flags=re.S)
    assert len(sections) == 1, len(sections)
    return sections[0]


def _nav(html: str) -> str:
    navs = re.findall(r"<nav>(.*?)</nav>", html, flags=re.S)
    assert len(navs) == 1, navs
    return navs[0]


def _test_blocks(section: str) -> dict[str, str]:
    """{test name: its block} of the statistics section (blocks start at their <h3>)."""
    parts = re.split(r"<h3>", section)[1:]
    return {re.split(r"[:( ]", part.split("</h3>", 1)[0], maxsplit=1)[0]: part for part in parts}


def _cluster_rows(block: str) -> dict[int, tuple[float, bool]]:
    """{cluster number: (p-value from the cell's sort key, shown in bold)} of a block's table."""
    tables = re.findall(r'<table class="sortable">(.*?)</table>', block, flags=re.S)
    assert len(tables) == 1, len(tables)
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", tables[0], flags=re.S):
        cells = re.findall(r"<td([^>]*)>(.*?)</td>", row, flags=re.S)
        if not cells:
            continue  # the header row
        p_attrs, p_text = cells[2]
        key = float(re.search(r'data-sort="([^"]+)"', p_attrs).group(1))
        rows[int(re.sub(r"<[^>]+>", "", cells[0][1]))] = (key, p_text.startswith("<strong>"))
    return rows


@pytest.fixture(scope="module")
def cohort_html(stats_run):
    """The workflow's cohort report (rule report_cohort) of the statistics cohort."""
    from test_workflow import snakemake

    target = "results/group/cohort_report.html"
    snakemake(stats_run, "--config", "on_error=raise", "--", target, configfile=STATS_CFG)
    return (stats_run / target).read_text()


@pytest.mark.workflow
def test_report_cohort_rule_shows_each_test(stats_run, cohort_html):
    """The cohort report: a nav link, each test's name, its clusters' p-values, cluster maps."""
    from exgsrc.report.statistics import MAX_MAPS, MAX_OTHER_ROWS
    from exgsrc.store import open_dataset

    assert '<a href="#statistics">Statistics</a>' in _nav(cohort_html)
    blocks = _test_blocks(_statistics_section(cohort_html))
    assert set(blocks) == {"audvis", "aud"}
    for name in ("audvis", "aud"):
        block = blocks[name]
        assert block.startswith(f"{name}: cluster test, sLORETA</h3>")
        ds = open_dataset(stats_run / "results" / "group" / f"task-demo_stat-{name}_stats.nc")
        p = np.asarray(ds["cluster_p_value"].values)
        number = np.asarray(ds["cluster"].values)
        sig = number[p < 0.05]
        assert sig.size >= 1, name
        rows = _cluster_rows(block)
        # every significant cluster in bold with the file's p-value; the others up to the cap
        assert len(rows) == sig.size + min(MAX_OTHER_ROWS, p.size - sig.size)
        for k, pk in zip(number, p, strict=True):
            if k in rows:
                assert rows[k] == (pk, pk < 0.05), (name, k)
            else:
                assert pk >= 0.05, (name, k)
        assert f"{sig.size} significant cluster(s)" in block
        for k in sig[:MAX_MAPS]:
            img = re.search(rf'<img [^>]*alt="statistics cluster {k}"[^>]*>', block)
            assert img is not None, (name, k)
            assert 'src="data:image/png;base64,' in img.group(0)
        assert block.count("<img ") == min(sig.size, MAX_MAPS)


@pytest.mark.workflow
def test_failed_test_shows_its_reason_in_the_cohort_report(stats_run, tmp_path):
    """A failed test's file gives a notice with the reason; the other tests are still shown."""
    from exgsrc.report.cohort import cohort_report

    failed = _few_subjects_failure(stats_run, tmp_path / "run")
    group = tmp_path / "group"
    group.mkdir()
    shutil.copy(failed, group / "task-demo_stat-few_stats.nc")
    ok_file = "task-demo_stat-audvis_stats.nc"
    shutil.copy(stats_run / "results" / "group" / ok_file, group / ok_file)
    out = group / "cohort_report.html"
    html = cohort_report([{"subject": "01", "status": "ok"}], out=out)
    assert out.read_text() == html
    assert '<a href="#statistics">Statistics</a>' in _nav(html)
    blocks = _test_blocks(_statistics_section(html))
    assert set(blocks) == {"audvis", "few"}
    few = blocks["few"]
    assert few.startswith("few (task-demo_stat-few_stats.nc)</h3>")
    assert "failed: statistics task-demo_stat-few_stats.nc" in few
    assert "2 usable subject(s), a cohort test needs at least 3" in few
    assert "sub-03: sub-03_task-demo_cond-auditory_desc-sLORETA_stc.nc: simulated failure" in few
    assert "<table" not in few and "<img" not in few
    assert blocks["audvis"].count('alt="statistics cluster') >= 1


def test_no_statistics_no_nav_link(tmp_path):
    from exgsrc.report.cohort import cohort_report

    html = cohort_report([{"subject": "01", "status": "ok"}], out=tmp_path / "cohort_report.html")
    assert "#statistics" not in html and 'id="statistics"' not in html
