# Per subject: montage -> sphere head model -> source space -> forward (computed once).


rule montage:
    input:
        recording_inputs,
    output:
        sub_path("montage.nc"),
    params:
        bids_root=str(BIDS_ROOT),
        task=TASK,
        selection=recording_selection,
        fallback=config["montage"]["fallback"],
        data_checks=config["data_checks"],
    log:
        log_path("montage"),
    benchmark:
        bench_path("montage")
    script:
        "../scripts/montage.py"


rule head_model:
    input:
        montage=sub_path("montage.nc"),
    output:
        sub_path("headmodel.nc"),
    params:
        head_model=config["head_model"],
    log:
        log_path("head_model"),
    benchmark:
        bench_path("head_model")
    script:
        "../scripts/head_model.py"


rule source_space:
    input:
        head_model=sub_path("headmodel.nc"),
    output:
        sub_path("src.nc"),
    params:
        source_space=config["source_space"],
    log:
        log_path("source_space"),
    benchmark:
        bench_path("source_space")
    script:
        "../scripts/source_space.py"


rule forward:
    input:
        head_model=sub_path("headmodel.nc"),
        src=sub_path("src.nc"),
    output:
        sub_path("fwd.nc"),
    log:
        log_path("forward"),
    benchmark:
        bench_path("forward")
    script:
        "../scripts/forward.py"
