# The embedded demo cohort, simulated into config["demo"]["root"] (only when bids_root is it).

if IS_DEMO:

    rule demo_bids:
        output:
            edf=expand(
                str(DEMO_ROOT / "sub-{subject}/eeg/sub-{subject}_task-demo_eeg.edf"),
                subject=SUBJECTS,
            ),
            channels=expand(
                str(DEMO_ROOT / "sub-{subject}/eeg/sub-{subject}_task-demo_channels.tsv"),
                subject=SUBJECTS,
            ),
            events=expand(
                str(DEMO_ROOT / "sub-{subject}/eeg/sub-{subject}_task-demo_events.tsv"),
                subject=SUBJECTS,
            ),
            electrodes=expand(
                str(DEMO_ROOT / "sub-{subject}/eeg/sub-{subject}_space-CapTrak_electrodes.tsv"),
                subject=SUBJECTS,
            ),
            truth=str(DEMO_ROOT / "code" / "demo_truth.json"),
            description=str(DEMO_ROOT / "dataset_description.json"),
        params:
            demo=config["demo"],
        log:
            str(LOGS / "demo_bids.log"),
        benchmark:
            str(BENCH / "demo_bids.tsv")
        script:
            "../scripts/demo_bids.py"


rule dataset_description:
    output:
        str(OUT / "dataset_description.json"),
    params:
        bids_root=str(BIDS_ROOT),
        config_sha256=config_sha256({k: v for k, v in config.items() if k != "on_error"}),
    log:
        str(LOGS / "dataset_description.log"),
    script:
        "../scripts/dataset_description.py"
