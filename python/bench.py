"""Benchmark (not a test): the Python package against the CLI, and Ray with 2 workers against 1.

    scripts/bench-python [--photos DIR] [--repeats 3] [--json out.json]

Prints the CPU and its SIMD features, then photos per second on the same photos for
`facegender predict --json` (the CLI: whole process, minus a one-photo run's start-up and model
loading) and `Pipeline.predict_paths` (models loaded beforehand), at 1 and at all threads, and
the ratio; then the Ray Data `predict` stage with 1 and 2 workers (actor start-up included,
as a job pays it) and the scaling ratio. Best of `--repeats` runs each.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def best(f, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", default=str(ROOT / "samples" / "fairface"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cli", default=str(ROOT / "target" / "debug" / "facegender"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    os.chdir(ROOT)
    import facegender

    photos = sorted(str(p) for p in Path(a.photos).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    cpus = os.cpu_count() or 1
    info = facegender.cpu()
    print(f"CPU: {info['model']} ({cpus} logical cores); SIMD features: {info['features']}; "
          f"core int8 kernels: {info['core_kernels']}; tract picks its kernels from the same features")
    print(f"{len(photos)} photos from {a.photos}; best of {a.repeats} runs; the dev profile for both")
    report = {"cpu": info, "photos": len(photos), "rows": []}

    def cli(paths, threads):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        subprocess.run([a.cli, "-q", "predict", "--json", *paths], env=env, check=True, stdout=subprocess.DEVNULL)

    print(f"{'engine':<34}{'threads':>8}{'photos/s':>10}")
    for threads in sorted({1, cpus}):
        start = best(lambda: cli(photos[:1], threads), a.repeats)
        whole = best(lambda: cli(photos, threads), a.repeats)
        cli_rate = (len(photos) - 1) / max(whole - start, 1e-9)
        p = facegender.Pipeline(threads=threads)
        p.predict_paths(photos[:2])  # the pool, if any, made
        py_rate = len(photos) / best(lambda: p.predict_paths(photos), a.repeats)
        print(f"{'CLI predict --json':<34}{threads:>8}{cli_rate:>10.1f}")
        print(f"{'Pipeline.predict_paths':<34}{threads:>8}{py_rate:>10.1f}   ({py_rate / cli_rate:.2f}x the CLI)")
        report["rows"].append({"threads": threads, "cli": cli_rate, "python": py_rate, "ratio": py_rate / cli_rate})

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import ray

    from facegender import distributed

    tmp = Path(tempfile.mkdtemp())
    try:
        manifest = tmp / "manifest.csv"
        pacsv.write_csv(pa.table({"path": [str(ROOT / p) for p in photos]}), str(manifest))
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        rates = {}
        for workers in (1, 2):
            def job():
                out = tmp / f"out-{workers}"
                shutil.rmtree(out, ignore_errors=True)
                distributed.run("predict", str(manifest), str(out), shard_size=max(1, len(photos) // 8),
                                workers=workers, progress=None)
            rates[workers] = len(photos) / best(job, a.repeats)
            print(f"{'Ray Data predict stage':<34}{workers:>7}w{rates[workers]:>10.1f}")
        ray.shutdown()
        print(f"Ray scaling, 2 workers against 1: {rates[2] / rates[1]:.2f}x "
              f"(on {cpus} cores; a worker is one process with one Pipeline and one thread)")
        report["ray"] = {"1": rates[1], "2": rates[2], "scaling": rates[2] / rates[1]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
