"""facegender on Ray Data: a manifest of photos, sharded, run by worker actors, written as Parquet.

    python -m facegender.distributed predict photos.csv out/ --workers 2
    python -m facegender.distributed crops photos.parquet crops/ --crop 64 --scale 0.75
    python -m facegender.distributed audit labelled.csv audit/ --label-column gender

The manifest (CSV or Parquet, local or any pyarrow filesystem URI such as ``s3://``) names one
photo per row (``--path-column``, default ``path``; relative paths are relative to the manifest's
folder) and optionally its label. Its rows are cut into contiguous shards of ``--shard-size``;
each shard is run by a ``map_batches`` actor that holds one :class:`facegender.Pipeline` (models
loaded once per actor) and becomes ``OUT/part-NNNNN.parquet``, written to a temporary file and
renamed, so a part is either whole or absent.

Stages:

- ``predict``: one row per face and per faceless or unreadable photo, the columns of
  ``Pipeline.predict_paths`` (``photo`` is the manifest row).
- ``crops``: one row per photo, ``preprocess``'s aligned crop of its largest face (``crop``:
  S x S x 3 uint8 bytes, row-major RGB) with status and reason.
- ``audit``: the photos whose given label the model disputes (``disagrees``), or that it could
  not judge (``no_face``, ``unreadable``, ``too_small``, ``uncertain``), for dataset cleaning.

Every part records a fingerprint (the model's sha256, stage and settings, and the manifest's
identity) in its Parquet metadata. A rerun into the same folder skips the shards already
written, computes only the missing ones, and refuses to add parts to a folder made with another
model or settings. A line per shard reports progress.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import Pipeline

STAGES = ("predict", "crops", "audit")
FINGERPRINT_KEY = b"facegender"
PART = "part-{:05d}.parquet"


class FingerprintMismatch(RuntimeError):
    """The output folder holds parts made by another model, stage or settings."""


class ShardsFailed(RuntimeError):
    """Some shards failed; the others are written, and a rerun computes only the failed ones."""

    def __init__(self, summary: "Summary"):
        self.summary = summary
        lines = "\n".join(f"  shard {s}: {e}" for s, e in sorted(summary.failed.items()))
        super().__init__(
            f"{len(summary.failed)} of {summary.shards} shards failed "
            f"(run the same command again to compute only them):\n{lines}"
        )


@dataclass
class Summary:
    """What a run did."""

    shards: int = 0
    computed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    worker_pids: set[int] = field(default_factory=set)
    photos: int = 0
    rows: int = 0
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
# The manifest


@dataclass
class Manifest:
    uri: str
    paths: list[str]
    labels: list[str] | None
    resolved: list[str]
    sha256: str


def read_manifest(uri: str, path_column: str = "path", label_column: str | None = None) -> Manifest:
    """Reads a CSV or Parquet manifest; clear errors for a missing file or missing columns."""
    import pyarrow.csv as pacsv
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, where = pafs.FileSystem.from_uri(_uri(uri))
    info = fs.get_file_info(where)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"manifest {uri} does not exist (or is not a file)")
    if where.endswith((".parquet", ".pq")):
        table = pq.read_table(where, filesystem=fs)
    elif where.endswith((".csv", ".csv.gz")):
        with fs.open_input_stream(where) as f:
            table = pacsv.read_csv(
                f, convert_options=pacsv.ConvertOptions(strings_can_be_null=False)
            )
    else:
        raise ValueError(f"manifest {uri}: expected a .csv or .parquet file")
    wanted = [path_column] + ([label_column] if label_column else [])
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise ValueError(
            f"manifest {uri} lacks column(s) {missing}; it has {table.column_names} "
            f"(choose them with --path-column / --label-column)"
        )
    paths = [str(p) for p in table.column(path_column).to_pylist()]
    labels = [str(v) for v in table.column(label_column).to_pylist()] if label_column else None
    # relative paths are relative to the manifest's folder, in the manifest's store
    if isinstance(fs, pafs.LocalFileSystem):
        base = os.path.dirname(where)
        resolved = [p if (os.path.isabs(p) or "://" in p) else os.path.join(base, p) for p in paths]
    else:
        base = _uri(uri).rsplit("/", 1)[0]
        resolved = [p if "://" in p else f"{base}/{p.lstrip('/')}" for p in paths]
    h = hashlib.sha256()
    for i, p in enumerate(paths):
        h.update(p.encode() + b"\0" + (labels[i].encode() if labels else b"") + b"\n")
    return Manifest(_uri(uri), paths, labels, resolved, h.hexdigest())


def _uri(p: str) -> str:
    """A local path as an absolute path (pyarrow wants one); URIs as they are."""
    return p if "://" in p else os.path.abspath(p)


# ---------------------------------------------------------------------------------------------
# Workers


class ShardWorker:
    """A Ray Data actor: one Pipeline, then one shard per call, written as a Parquet part."""

    def __init__(self, job: dict[str, Any]):
        self.job = job
        self.pipeline = Pipeline(**job["settings"])
        if self.pipeline.model_sha256 != job["fingerprint"]["model_sha256"]:
            raise FingerprintMismatch(
                f"worker {os.getpid()} loaded model {self.pipeline.model_sha256}, "
                f"the driver {job['fingerprint']['model_sha256']}: the models folder differs"
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {k: [] for k in ("shard", "ok", "error", "pid", "photos", "rows", "seconds")}
        for i, shard in enumerate(batch["shard"]):
            t = time.perf_counter()
            paths = [str(p) for p in batch["paths"][i]]
            names = [str(p) for p in batch["names"][i]]
            labels = [str(v) for v in batch["labels"][i]] if self.job["label_column"] else None
            try:
                table = run_shard(self.pipeline, self.job, int(batch["start"][i]), paths, names, labels)
                write_part(self.job["out"], int(shard), table, self.job["fingerprint"])
                ok, error, rows = True, "", table.num_rows
            except Exception as e:  # a failed shard is reported; the other shards go on
                ok, error, rows = False, f"{type(e).__name__}: {e}", 0
            out["shard"].append(int(shard))
            out["ok"].append(ok)
            out["error"].append(error)
            out["pid"].append(os.getpid())
            out["photos"].append(len(paths))
            out["rows"].append(rows)
            out["seconds"].append(time.perf_counter() - t)
        return {k: np.array(v) for k, v in out.items()}


def run_shard(pipeline: Pipeline, job: dict, start: int, paths: list[str], names: list[str], labels):
    """One shard's table for the job's stage."""
    import pyarrow as pa

    local = not any("://" in p for p in paths)  # else read through pyarrow's filesystems
    stage = job["stage"]
    if stage == "crops":
        if not local:
            raise ValueError("the crops stage reads local (or mounted) files only")
        pixels, cols = pipeline.crops(paths, crop=job["crop"], scale=job["scale"])
        cols["image"] = np.array(names, dtype=object)
        cols["photo"] = np.arange(start, start + len(paths), dtype=np.int64)
        cols["crop"] = [p.tobytes() if ok else None for p, ok in zip(pixels, cols["has_crop"])]
        return _table(cols, labels, [cols["photo"] - start])
    if local:
        cols = pipeline.predict_paths(paths)
    else:
        cols = pipeline.predict_bytes(_read_blobs(paths), names)
    local_row = cols["photo"]
    cols["image"] = np.array([names[i] for i in local_row], dtype=object)
    cols["photo"] = local_row + start
    if stage == "predict":
        return _table(cols, labels, [local_row])
    return _audit(cols, names, labels, start, pa)


def _read_blobs(uris: list[str]) -> list[bytes]:
    """Photo bytes through pyarrow's filesystems (s3://, gs://, hdfs://); b"" if unreadable."""
    import pyarrow.fs as pafs

    blobs = []
    for u in uris:
        try:
            fs, where = pafs.FileSystem.from_uri(u)
            with fs.open_input_stream(where) as f:
                blobs.append(f.read())
        except Exception:
            blobs.append(b"")  # reported as an empty (unreadable) photo
    return blobs


def _table(cols: dict[str, Any], labels: list[str] | None, label_rows: list[np.ndarray]):
    """Columns as an Arrow table: matrices become fixed-size lists, and what a row lacks (NaN
    floats, the logits of an unclassified face, the points of a photo row) becomes null."""
    import pyarrow as pa

    cols = dict(cols)
    if labels is not None:
        cols["given_label"] = np.array([labels[i] for i in label_rows[0]], dtype=object)
    no_face = np.asarray(cols["face"]) < 0 if "face" in cols else None
    arrays, names = [], []
    order = ["photo", "image"] + [k for k in cols if k not in ("photo", "image")]
    for k in order:
        v = cols[k]
        if isinstance(v, list):
            arrays.append(pa.array(v, type=pa.binary()))
        elif v.dtype == object:
            arrays.append(pa.array(list(v), type=pa.string()))
        else:
            rows = v.reshape(len(v), -1)
            if k == "logits":
                missing = ~np.asarray(cols["has_logits"])
            elif v.dtype.kind == "f":
                missing = np.isnan(rows).all(axis=1)
            elif v.ndim > 1 and no_face is not None:
                missing = no_face
            else:
                missing = None
            arrays.append(pa.array(v, mask=missing) if v.ndim == 1 else _fixed_list(v, missing))
        names.append(k)
    return pa.Table.from_arrays(arrays, names=names)


def _fixed_list(v: np.ndarray, missing):
    """An N x ... array as nested fixed-size lists (N x 4 -> list<4>, N x 68 x 2 ->
    list<68 x list<2>>), null where `missing`."""
    import pyarrow as pa

    flat = pa.array(v.reshape(-1))
    for width in reversed(v.shape[2:]):
        flat = pa.FixedSizeListArray.from_arrays(flat, width)
    mask = None if missing is None else pa.array(missing)
    return pa.FixedSizeListArray.from_arrays(flat, v.shape[1], mask=mask)


def _audit(cols, names, labels, start, pa):
    """The photos to look at again: label disputed, or no judgement possible."""
    if labels is None:
        raise ValueError("the audit stage needs the manifest's labels (--label-column)")
    rows = {k: [] for k in ("photo", "image", "given_label", "predicted", "probability", "reason")}
    n = len(names)
    best: dict[int, int] = {}
    area = (cols["box"][:, 2] - cols["box"][:, 0]) * (cols["box"][:, 3] - cols["box"][:, 1])
    for r, local in enumerate(cols["photo"] - start):
        local = int(local)
        if local not in best or area[r] > area[best[local]]:
            best[local] = r
    for local in range(n):
        r = best[local]
        status, predicted = cols["status"][r], cols["label"][r]
        if status == "ok" and predicted == labels[local]:
            continue
        reason = "disagrees" if status == "ok" else status
        rows["photo"].append(start + local)
        rows["image"].append(names[local])
        rows["given_label"].append(labels[local])
        rows["predicted"].append(predicted)
        rows["probability"].append(float(cols["probability"][r]))
        rows["reason"].append(reason)
    return pa.table(
        {
            "photo": pa.array(rows["photo"], pa.int64()),
            "image": pa.array(rows["image"], pa.string()),
            "given_label": pa.array(rows["given_label"], pa.string()),
            "predicted": pa.array(rows["predicted"], pa.string()),
            "probability": pa.array(rows["probability"], pa.float32()),
            "reason": pa.array(rows["reason"], pa.string()),
        }
    )


# ---------------------------------------------------------------------------------------------
# Parts on disk (or object storage)


def _fs(out: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(_uri(out))


def write_part(out: str, shard: int, table, fingerprint: dict) -> None:
    """Writes a part through a temporary file and a rename: whole or absent."""
    import pyarrow.parquet as pq

    fs, base = _fs(out)
    meta = dict(table.schema.metadata or {})
    meta[FINGERPRINT_KEY] = json.dumps({**fingerprint, "shard": shard}, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    final = f"{base}/{PART.format(shard)}"
    tmp = f"{base}/.{PART.format(shard)}.{os.getpid()}.tmp"
    pq.write_table(table, tmp, filesystem=fs, compression="zstd")
    try:
        fs.move(tmp, final)
    except Exception:
        fs.delete_file(tmp)
        raise


def read_fingerprint(out: str, shard: int) -> dict | None:
    """The fingerprint a finished part was written with (None if the part is not there)."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, base = _fs(out)
    path = f"{base}/{PART.format(shard)}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    meta = pq.read_schema(path, filesystem=fs).metadata or {}
    raw = meta.get(FINGERPRINT_KEY)
    return json.loads(raw) if raw else {}


def read_parts(out: str):
    """Every part of a finished job as one Arrow table, in manifest order."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, base = _fs(out)
    infos = fs.get_file_info(pafs.FileSelector(base))
    parts = sorted(i.path for i in infos if i.base_name.startswith("part-") and i.base_name.endswith(".parquet"))
    return pa.concat_tables([pq.read_table(p, filesystem=fs) for p in parts]) if parts else None


# ---------------------------------------------------------------------------------------------
# The driver


def run(
    stage: str,
    manifest: str,
    out: str,
    *,
    shard_size: int = 1000,
    workers: int = 2,
    threads_per_worker: int = 1,
    pipeline: dict[str, Any] | None = None,
    path_column: str = "path",
    label_column: str | None = None,
    crop: int = 64,
    scale: float = 0.75,
    progress: Callable[[str], None] | None = print,
) -> Summary:
    """Runs `stage` over the manifest on the Ray cluster this process is connected to (a local
    one is started if none is), writing OUT/part-NNNNN.parquet; see the module docs."""
    import ray

    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
    if shard_size < 1 or workers < 1 or threads_per_worker < 1:
        raise ValueError("shard_size, workers and threads_per_worker must be at least 1")
    if stage == "audit" and not label_column:
        raise ValueError("the audit stage needs --label-column")
    t0 = time.perf_counter()
    m = read_manifest(manifest, path_column, label_column)
    settings = dict(pipeline or {})
    settings["threads"] = threads_per_worker
    # The driver loads the models once too: their sha256 is the parts' fingerprint.
    probe = Pipeline(**settings)
    # Workers start in other folders (and on other machines): give them absolute paths.
    settings["models_dir"] = os.path.abspath(probe.models_dir)
    for key in ("model", "dlib"):
        if settings.get(key):
            settings[key] = os.path.abspath(settings[key])
    fingerprint = {
        "stage": stage,
        "model_sha256": probe.model_sha256,
        "settings": {k: v for k, v in probe.settings.items() if k not in ("models_dir", "model", "dlib", "threads")},
        "stage_settings": {"crop": crop, "scale": scale} if stage == "crops" else {},
        "manifest_sha256": m.sha256,
        "manifest_rows": len(m.paths),
        "shard_size": shard_size,
        "label_column": label_column,
    }
    fs, base = _fs(out)
    fs.create_dir(base, recursive=True)
    shards = [(s, min(s + shard_size, len(m.paths))) for s in range(0, len(m.paths), shard_size)]
    summary = Summary(shards=len(shards))
    todo = []
    for k, (a, b) in enumerate(shards):
        found = read_fingerprint(out, k)
        if found is None:
            todo.append(k)
            continue
        found = {key: v for key, v in found.items() if key != "shard"}
        if found != fingerprint:
            differs = sorted(key for key in set(found) | set(fingerprint) if found.get(key) != fingerprint.get(key))
            raise FingerprintMismatch(
                f"{out} holds {PART.format(k)}, made with other {', '.join(differs)} "
                f"(its model {found.get('model_sha256')}, now {fingerprint['model_sha256']}): "
                f"write to a new folder, or delete the old parts"
            )
        summary.skipped.append(k)
    _say(progress, f"{stage}: {len(m.paths)} photos in {len(shards)} shards of {shard_size}; "
         f"{len(summary.skipped)} already done, {len(todo)} to compute on {workers} workers")
    if todo:
        if not ray.is_initialized():
            ray.init(num_cpus=workers * threads_per_worker, log_to_driver=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.enable_operator_progress_bars = False
        # Start work once every actor holds its models (up to 10 minutes for a cluster to
        # provide them), so that the shards spread over all of them from the first.
        ctx.wait_for_min_actors_s = 600
        job = {
            "settings": settings,
            "fingerprint": fingerprint,
            "stage": stage,
            "out": _uri(out),
            "label_column": label_column,
            "crop": crop,
            "scale": scale,
        }
        items = [
            {
                "shard": k,
                "start": shards[k][0],
                "paths": m.resolved[shards[k][0]:shards[k][1]],
                "names": m.paths[shards[k][0]:shards[k][1]],
                "labels": (m.labels or [""] * len(m.paths))[shards[k][0]:shards[k][1]],
            }
            for k in todo
        ]
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ShardWorker,
            fn_constructor_kwargs={"job": job},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(items)), max_tasks_in_flight_per_actor=1),
            num_cpus=threads_per_worker,
        )
        done = 0
        for row in ds.iter_rows():
            done += 1
            k, pid = int(row["shard"]), int(row["pid"])
            summary.worker_pids.add(pid)
            if row["ok"]:
                summary.computed.append(k)
                summary.photos += int(row["photos"])
                summary.rows += int(row["rows"])
                what = f"{row['photos']} photos -> {row['rows']} rows"
            else:
                summary.failed[k] = str(row["error"])
                what = f"FAILED: {row['error']}"
            _say(progress, f"  shard {k + 1}/{len(shards)} ({done}/{len(todo)} this run): {what}, "
                 f"{row['seconds']:.1f} s, worker pid {pid}")
    summary.computed.sort()
    summary.seconds = time.perf_counter() - t0
    _say(progress, f"{stage}: {len(summary.computed)} shards computed, {len(summary.skipped)} skipped, "
         f"{len(summary.failed)} failed, {summary.seconds:.1f} s -> {out}")
    if summary.failed:
        raise ShardsFailed(summary)
    return summary


def _say(progress, line: str) -> None:
    if progress is not None:
        progress(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m facegender.distributed",
        description="Run a facegender stage over a manifest of photos on Ray Data, one Parquet part per shard.",
        epilog=(
            "examples:\n"
            "  python -m facegender.distributed predict photos.csv out/predict --workers 2\n"
            "  python -m facegender.distributed crops photos.csv out/crops --crop 64 --scale 0.75\n"
            "  python -m facegender.distributed audit photos.csv out/audit --label-column gender\n"
            "  python -m facegender.distributed predict s3://bucket/m.parquet s3://bucket/out --address auto\n"
            "\nA rerun into the same folder computes only the shards that are missing."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("stage", choices=STAGES)
    ap.add_argument("manifest", help="CSV or Parquet with a column of photo paths (relative to the manifest)")
    ap.add_argument("out", help="folder (or URI) for part-NNNNN.parquet")
    ap.add_argument("--shard-size", type=int, default=1000, help="photos per shard (default 1000)")
    ap.add_argument("--workers", type=int, default=2, help="actors, each holding one Pipeline (default 2)")
    ap.add_argument("--threads-per-worker", type=int, default=1, help="threads (and CPUs) per actor (default 1)")
    ap.add_argument("--path-column", default="path")
    ap.add_argument("--label-column", default=None)
    ap.add_argument("--models", default=None, help="models folder (default: as the CLI finds it)")
    ap.add_argument("--model", default=None, help="classifier folder (default: models/gender-host, else models/gender)")
    ap.add_argument("--device-chain", action="store_true", help="the microcontroller's chain")
    ap.add_argument("--mirror", action="store_true", help="average each face with its mirror image")
    ap.add_argument("--min-face", type=float, default=32.0)
    ap.add_argument("--crop", type=int, default=64, help="crops stage: side in pixels (default 64)")
    ap.add_argument("--scale", type=float, default=0.75, help="crops stage: framing (default 0.75)")
    ap.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    a = ap.parse_args(argv)
    try:
        if a.address:
            import ray

            ray.init(address=a.address, log_to_driver=False)
        run(
            a.stage,
            a.manifest,
            a.out,
            shard_size=a.shard_size,
            workers=a.workers,
            threads_per_worker=a.threads_per_worker,
            pipeline={
                "models_dir": a.models,
                "model": a.model,
                "device_chain": a.device_chain,
                "mirror": a.mirror,
                "min_face": a.min_face,
            },
            path_column=a.path_column,
            label_column=a.label_column,
            crop=a.crop,
            scale=a.scale,
            progress=lambda line: print(line, flush=True),
        )
    except (ShardsFailed, FingerprintMismatch, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
