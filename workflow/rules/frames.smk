# Decode each video into JPEG batches; the demo video is made here too.


checkpoint extract_frames:
    input:
        video=video_input,
    output:
        frames=(
            directory("results/{video}/frames")
            if config["keep_frames"]
            else temp(directory("results/{video}/frames"))
        ),
    log:
        "logs/extract_frames/{video}.log",
    conda:
        ENV
    threads: config["resources"]["extract_frames"].get("threads", 1)
    resources:
        mem_mb=scaled("extract_frames", "mem_mb"),
        runtime=scaled("extract_frames", "runtime"),
    params:
        video=video_path,
        source=video_source,
        batch_size=config["batch_size"],
        quality=config["jpeg_quality"],
        listing=lambda wildcards: listing_path(wildcards.video),
    script:
        "../scripts/extract_frames.py"


rule demo_data:
    output:
        video=DEMO_VIDEO,
        predictions=DEMO_PREDICTIONS,
    log:
        "logs/demo_data.log",
    conda:
        ENV
    params:
        frames=config["demo"]["frames"],
    script:
        "../scripts/demo_data.py"
