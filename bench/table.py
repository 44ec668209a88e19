"""Regenerate the results table in BENCHMARKS.md from the newest files in bench/results/."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "BENCHMARKS.md"
START, END = "<!-- table:start -->", "<!-- table:end -->"
MIB = 1024**2


def newest(gpu: bool) -> dict | None:
    found = []
    for path in sorted((ROOT / "bench" / "results").glob("*.json")):
        data = json.loads(path.read_text())
        if "image_size" not in data:  # another benchmark's result (rows written by hand)
            continue
        if bool(data["machine"]["gpu"]) == gpu:
            found.append((data["date"], not data.get("quick"), path.name, data))
    return max(found, key=lambda f: f[:3])[3] if found else None


def newest_extraction(data: dict) -> dict:
    """``bench/extraction.py``'s newest result where it is as new as ``data`` (a CPU run
    of ``bench/run.py``, which measures extraction too), else ``data``."""
    found = sorted((ROOT / "bench" / "results").glob("*-extraction.json"))
    if data.get("machine", {}).get("gpu") or not found:
        return data
    alone = json.loads(found[-1].read_text())
    return alone if alone["date"] >= data["date"] else data


def fmt(s: dict, scale: float = 1.0, digits: int = 2) -> str:
    return (
        f"{s['median'] / scale:.{digits}f} (min {s['min'] / scale:.{digits}f}, "
        f"max {s['max'] / scale:.{digits}f}, n={s['runs']})"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def rows(data: dict | None, label: str) -> list[str]:
    if data is None:
        return [f"| {label} | all | | no complete `bench/run.py` result yet (see below) | |"]
    cmd = f"`{data['command']}`" if data.get("command") else None
    cmd = cmd or ("`make bench-quick`" if data.get("quick") else "`make bench`")
    where = f"{label}: {data['machine']['gpu'] or data['machine']['processor']}, " + (
        f"{data['machine']['cpu_count']} cores, image size {data['image_size']}"
    )
    out = []
    seg = data.get("segmentation", {})
    for n, row in seg.items():
        ratio = row["ratio_fps"]
        out.append(
            f"| {where} | segment {n} frames: sam2flow / stock frames/s | >= 1.0 (aim 1.2) | "
            f"{ratio:.2f} ({fmt(row['sam2flow']['fps'])} vs {fmt(row['stock']['fps'])}) | "
            f"{verdict(ratio >= 1.0)}, {cmd} |"
        )
    if seg:
        sizes = sorted(seg, key=int)
        lo, hi = sizes[0], sizes[-1]
        key = "peak_cuda_allocated_bytes" if data["machine"]["gpu"] else "peak_rss_bytes"
        ours = seg[hi]["sam2flow"][key]["median"] / seg[lo]["sam2flow"][key]["median"]
        stock = seg[hi]["stock"][key]["median"] / seg[lo]["stock"][key]["median"]
        per_frame = {
            m: (seg[hi][m][key]["median"] - seg[lo][m][key]["median"]) / (int(hi) - int(lo))
            for m in ("sam2flow", "stock")
        }
        out.append(
            f"| {where} | peak memory {hi} / {lo} frames ({key}) | sam2flow <= 1.15 | "
            f"sam2flow {ours:.3f} ({per_frame['sam2flow'] / 1024:.0f} KiB/frame; "
            f"{seg[lo]['sam2flow'][key]['median'] / MIB:.0f} -> "
            f"{seg[hi]['sam2flow'][key]['median'] / MIB:.0f} MiB); stock {stock:.3f} "
            f"({per_frame['stock'] / 1024:.0f} KiB/frame; "
            f"{seg[lo]['stock'][key]['median'] / MIB:.0f} -> "
            f"{seg[hi]['stock'][key]['median'] / MIB:.0f} MiB) | {verdict(ours <= 1.15)}, {cmd} |"
        )
    extraction = newest_extraction(data)
    ecmd = cmd
    if extraction is not data:
        ecmd = f"`{extraction['command']}`; `{extraction['date']}-extraction.json`"
    for name, row in extraction.get("extraction", {}).items():
        best = max(row["ratio_fps"], row.get("ratio_fps_one_process", 0))
        ok = best >= 1.5 and row["sam2flow"]["psnr_db"] >= row["ffmpeg"]["psnr_db"]
        one = row.get("one_process")
        one = (
            f"one process {row['ratio_fps_one_process']:.2f} ({fmt(one['fps'], digits=0)}); "
            if one
            else ""
        )
        workers = row["sam2flow"].get("workers")
        ranges = f"{workers} ranges " if workers else ""
        out.append(
            f"| {where} | extract {name} ({row['frames']} frames): sam2flow / ffmpeg frames/s | "
            f">= 1.5 at equal or better quality | {one}{ranges}{row['ratio_fps']:.2f} "
            f"({fmt(row['sam2flow']['fps'], digits=0)} vs {fmt(row['ffmpeg']['fps'], digits=0)}); "
            f"PSNR {row['sam2flow']['psnr_db']:.1f} dB at {row['sam2flow']['quality_setting']}, "
            f"{row['sam2flow']['bytes_per_frame'] / 1024:.0f} KiB/frame vs "
            f"{row['ffmpeg']['psnr_db']:.1f} dB at {row['ffmpeg']['quality_setting']}, "
            f"{row['ffmpeg']['bytes_per_frame'] / 1024:.0f} KiB/frame | {verdict(ok)}, {ecmd} |"
        )
    g = data.get("guard_cost")
    if g:
        out.append(
            f"| {where} | guard cost: monitoring on vs off, {g['frames']} frames | <= 2% | "
            f"{g['cost'] * 100:+.1f}% ({fmt(g['on_seconds'])} s vs {fmt(g['off_seconds'])} s) | "
            f"{verdict(g['cost'] <= 0.02)}, {cmd} |"
        )
    for jobs, row in data.get("workflow_scale", {}).items():
        target = "< 60 s for 1,200 jobs" if jobs == "1200" else "(scale)"
        ok = row["seconds"]["median"] < 60 if jobs == "1200" else True
        out.append(
            f"| {where} | `snakemake -n` with {jobs} segment jobs ({row['videos']} videos) | "
            f"{target} | {fmt(row['seconds'], digits=1)} s | {verdict(ok)}, {cmd} |"
        )
    return out


def key(row: str) -> tuple[str, str]:
    """A row's machine and measure: what a regenerated row replaces."""
    cells = row.split(" | ")
    return cells[0], cells[1] if len(cells) > 1 else ""


def other_rows(text: str) -> list[str]:
    """Rows of the current table from other benchmarks (written by hand, each naming its
    own command and result file): kept as they are."""
    table = text[text.find(START) : text.find(END)].splitlines()[3:]
    return [r for r in table if "make bench" not in r and not re.match(r"\| \w+ \| all \|", r)]


def main() -> None:
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    cpu, gpu = rows(newest(gpu=False), "CPU"), rows(newest(gpu=True), "GPU")
    ours = {key(r) for r in cpu + gpu}
    lines = [
        START,
        "| machine | measure | target | measured: median (min, max, runs) | status, command |",
        "|---|---|---|---|---|",
        *cpu,
        *[r for r in other_rows(text) if key(r) not in ours],  # not a stale copy of ours
        *gpu,
        END,
    ]
    text = re.sub(re.escape(START) + ".*?" + re.escape(END), "\n".join(lines), text, flags=re.S)
    DOC.write_text(text)
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()
