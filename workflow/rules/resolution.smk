# Per subject: resolution metrics (PSF/CTF) of each configured method, one file.


rule resolution:
    input:
        fwd=sub_path("fwd.nc"),
        inv=sub_path("inv.nc"),
    output:
        sub_path("resolution.nc"),
    params:
        methods=RES_METHODS,
        lambda2=LAMBDA2,
        block_size=config["resolution"]["block_size"],
    log:
        log_path("resolution"),
    benchmark:
        bench_path("resolution")
    script:
        "../scripts/resolution.py"
