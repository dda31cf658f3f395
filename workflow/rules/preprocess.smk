# Per subject: epochs (filter, average reference, rejection) -> noise covariance (baseline of
# the kept epochs, or a separate noise recording when covariance.noise_task is set);
# evoked responses of all conditions (one job); per contrast (config contrasts): the weighted sum of evokeds.


rule epochs:
    input:
        recording=recording_inputs,
        montage=sub_path("montage.nc"),
    output:
        sub_path("epo.nc"),
    params:
        bids_root=str(BIDS_ROOT),
        task=TASK,
        selection=recording_selection,
        conditions=CONDITIONS,
        filter=config["filter"],
        epochs=config["epochs"],
        reject=config["reject"],
        data_checks=config["data_checks"],
        **EVENTS_PARAMS,
    log:
        log_path("epochs"),
    benchmark:
        bench_path("epochs")
    script:
        "../scripts/epochs.py"


rule noise_cov:
    input:
        unpack(noise_cov_inputs),
    output:
        sub_path("cov.nc"),
    params:
        covariance=config["covariance"],
        bids_root=str(BIDS_ROOT),
        selection=recording_selection,
        filter=config["filter"] if NOISE_TASK else None,
    log:
        log_path("noise_cov"),
    benchmark:
        bench_path("noise_cov")
    script:
        "../scripts/noise_cov.py"


# One job per subject for all its conditions' averages (tiny steps: one Python start-up
# instead of one per condition); a condition without epochs still fails on its own.
rule evoked:
    input:
        epochs=sub_path("epo.nc"),
    output:
        [sub_path(f"cond-{lab}_ave.nc") for lab in EVENT_COND_LABELS],
    params:
        conditions=dict(EVENT_COND_LABELS),  # label (file name) -> condition, output order
    log:
        log_path("evoked"),
    benchmark:
        bench_path("evoked")
    script:
        "../scripts/evoked.py"


if CONTRAST_LABELS:

    rule contrast:
        input:
            evoked=lambda wc: expand(
                sub_path("cond-{cond}_ave.nc"),
                subject=wc.subject,
                cond=[condition_label(c) for c in CONTRAST_LABELS[wc.cond].weights],
            ),
        output:
            sub_path("cond-{cond}_ave.nc"),
        wildcard_constraints:
            cond="|".join(CONTRAST_LABELS),
        params:
            contrast=lambda wc: CONTRAST_LABELS[wc.cond].name,
            weights=lambda wc: CONTRAST_LABELS[wc.cond].weights,
        log:
            log_path("contrast", "sub-{subject}_cond-{cond}"),
        benchmark:
            bench_path("contrast", "sub-{subject}_cond-{cond}")
        script:
            "../scripts/contrast.py"
