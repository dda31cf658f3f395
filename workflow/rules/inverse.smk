# Per subject: inverse operator (once); per condition and method: source estimate; SNR.


rule inverse_operator:
    input:
        fwd=sub_path("fwd.nc"),
        cov=sub_path("cov.nc"),
    output:
        sub_path("inv.nc"),
    params:
        loose=config["inverse"]["loose"],
        depth=config["inverse"]["depth"],
    log:
        log_path("inverse_operator"),
    benchmark:
        bench_path("inverse_operator")
    script:
        "../scripts/inverse_operator.py"


rule source_estimate:
    input:
        inv=sub_path("inv.nc"),
        evoked=sub_path("cond-{cond}_ave.nc"),
    output:
        sub_path("cond-{cond}_desc-{method}_stc.nc"),
    params:
        lambda2=LAMBDA2,
        snr=config["inverse"]["snr"],
        pick_ori=config["inverse"]["pick_ori"],
    log:
        log_path("source_estimate", "sub-{subject}_cond-{cond}_desc-{method}"),
    benchmark:
        bench_path("source_estimate", "sub-{subject}_cond-{cond}_desc-{method}")
    script:
        "../scripts/source_estimate.py"


rule snr:
    input:
        inv=sub_path("inv.nc"),
        evoked=expand(sub_path("cond-{cond}_ave.nc"), cond=list(COND_LABELS), allow_missing=True),
    output:
        sub_path("snr.nc"),
    log:
        log_path("snr"),
    benchmark:
        bench_path("snr")
    script:
        "../scripts/snr.py"
