# Per-video merge and the run's memory summary.


rule merge_video:
    input:
        video=video_input,
        masks=batch_files("masks.npz"),
        tables=batch_files("frames.csv"),
    # update(): a good earlier merge is not deleted before the job runs, and is restored
    # if the job fails (each file is replaced atomically when it is ready).
    output:
        masks=update("results/{video}/masks.h5"),
        tracks=update("results/{video}/tracks.csv"),
        overlay=update(
            report(
                "results/{video}/overlay.mp4",
                caption="../report/overlay.rst",
                category="Videos",
                subcategory="{video}",
            )
        ),
        sheet=update(
            report(
                "results/{video}/contact_sheet.png",
                caption="../report/contact_sheet.rst",
                category="Videos",
                subcategory="{video}",
            )
        ),
    log:
        "logs/merge_video/{video}.log",
    conda:
        ENV
    resources:
        mem_mb=scaled("merge_video", "mem_mb"),
        runtime=merge_runtime,
    params:
        video=video_path,
    script:
        "../scripts/merge_video.py"


rule memory_summary:
    input:
        records=all_records,
    output:
        csv=report(
            "results/memory_summary.csv",
            caption="../report/memory_summary.rst",
            category="Memory",
        ),
        html=report(
            "results/memory_report.html",
            caption="../report/memory_report.rst",
            category="Memory",
        ),
        skipped=report(
            "results/skipped.tsv",
            caption="../report/skipped.rst",
            category="Memory",
        ),
    log:
        "logs/memory_summary.log",
    conda:
        ENV
    params:
        videos=list(videos.index),
    script:
        "../scripts/memory_summary.py"
