"""A real out-of-memory: a CPU allocation failing under RLIMIT_AS, recovered by chunking."""

import json
import subprocess
import sys
import textwrap

import pytest

resource = pytest.importorskip("resource")

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import psutil, torch
    from sam2flow.memory import run_with_recovery

    MIB = 1024 ** 2
    vms = psutil.Process().memory_info().vms
    limit = vms + 1536 * MIB  # 1.5 GiB of address space left for the work
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def work(plan, carry):
        # 40 MiB per frame, really allocated and touched: 60 frames cannot fit, 30 can.
        frames = torch.empty(plan.frames * 40 * MIB, dtype=torch.uint8)
        frames.fill_(1)
        return plan.last_frame

    record = run_with_recovery(work, 0, 59, device=torch.device("cpu"))
    print(json.dumps(record.to_dict()))
    """
)


def test_real_cpu_oom_under_rlimit_is_recovered_by_chunking():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads(out.stdout.strip().splitlines()[-1])
    first = record["attempts"][0]
    assert first["outcome"] == "oom" and first["chunk_size"] == 60
    assert "can't allocate memory" in first["error"] or "MemoryError" in first["error"]
    assert record["status"] == "recovered"
    assert record["frames_ok"] == 60
    assert [a["chunk_size"] for a in record["attempts"][1:]] == [30, 30]
