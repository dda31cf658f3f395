# Per subject: epochs (filter, average reference, rejection) -> noise covariance (baseline of
# the kept epochs, or a separate noise recording when covariance.noise_task is set);
# per condition: evoked.


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


rule evoked:
    input:
        epochs=sub_path("epo.nc"),
    output:
        sub_path("cond-{cond}_ave.nc"),
    params:
        condition=lambda wc: COND_LABELS[wc.cond],
    log:
        log_path("evoked", "sub-{subject}_cond-{cond}"),
    benchmark:
        bench_path("evoked", "sub-{subject}_cond-{cond}")
    script:
        "../scripts/evoked.py"
