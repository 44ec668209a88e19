# SAM 2 over one batch inside the memory guard: one job per batch.


rule segment_batch:
    input:
        frames=frames_dir,
        prompts=prompts_input,
        carry=previous_batch,
        checkpoint=checkpoint_input,
        after=group_predecessor_input,
    output:
        masks="results/{video}/batches/{batch}/masks.npz",
        table="results/{video}/batches/{batch}/frames.csv",
        record="results/{video}/batches/{batch}/memory.json",
    log:
        "logs/segment_batch/{video}/{batch}.log",
    benchmark:
        "benchmarks/segment_batch/{video}/{batch}.tsv"
    group:
        segment_group
    conda:
        ENV
    threads: config["resources"]["segment_batch"]["threads"]
    resources:
        gpu=config["resources"]["segment_batch"]["gpu"],
        mem_mb=scaled("segment_batch", "mem_mb"),
        runtime=scaled("segment_batch", "runtime"),
    params:
        source=batch_source,
        prompt=prompt_options,
        model=model_params,
        # Only what can change masks: toggling monitoring does not rerun finished batches
        # (the script reads the rest from the config).
        memory=mask_settings(config["memory"]),
        rerun=rerun_strategy,
        decoder=config["frame_decoder"],
    script:
        "../scripts/segment_batch.py"


if CHECKPOINT:

    # The checkpoint is fetched once, on the machine that runs Snakemake (login nodes have
    # the internet that compute nodes often lack), before any GPU job starts.
    rule fetch_checkpoint:
        output:
            CHECKPOINT,
        log:
            "logs/fetch_checkpoint.log",
        localrule: True
        conda:
            ENV
        params:
            model=config["model"],
        script:
            "../scripts/fetch_checkpoint.py"
