# Per subject: inverse operator (once); per condition: source estimates of all methods; SNR.


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


# One job per condition for all methods' estimates (each is a matrix product on a small
# evoked: one Python start-up instead of one per method); a method that fails still
# fails on its own.
rule source_estimate:
    input:
        inv=sub_path("inv.nc"),
        evoked=sub_path("cond-{cond}_ave.nc"),
    output:
        [sub_path(f"cond-{{cond}}_desc-{m}_stc.nc") for m in METHODS],
    params:
        methods=METHODS,  # output order
        lambda2=LAMBDA2,
        snr=config["inverse"]["snr"],
        pick_ori=config["inverse"]["pick_ori"],
    log:
        log_path("source_estimate", "sub-{subject}_cond-{cond}"),
    benchmark:
        bench_path("source_estimate", "sub-{subject}_cond-{cond}")
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
