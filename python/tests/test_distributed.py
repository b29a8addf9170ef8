"""facegender.distributed on a real local Ray cluster (ray.init(num_cpus=2)), no mocks."""

import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from facegender import distributed


@pytest.fixture()
def manifest(tmp_path, photos, root):
    """A CSV manifest of the sample photos (absolute paths) with their true labels."""
    paths = [str(root / p) for p in photos]
    labels = [p.split("/")[-2] if "/fairface/" in p else "none" for p in photos]
    path = tmp_path / "manifest.csv"
    pacsv.write_csv(pa.table({"path": paths, "gender": labels}), str(path))
    return path, paths


def run(stage, manifest, out, **kw):
    kw.setdefault("shard_size", 3)
    kw.setdefault("workers", 2)
    return distributed.run(stage, str(manifest), str(out), progress=None, **kw)


def test_parts_equal_the_cli_and_two_workers_did_the_work(ray_cluster, manifest, tmp_path, cli_json):
    path, paths = manifest
    s = run("predict", path, tmp_path / "out", label_column="gender")
    assert s.shards == len(s.computed) == -(-len(paths) // 3) and not s.failed
    assert len(s.worker_pids) >= 2 and os.getpid() not in s.worker_pids
    parts = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert parts == [distributed.PART.format(k) for k in range(s.shards)]
    written = {pq.read_schema(tmp_path / "out" / p).metadata[b"facegender"] for p in parts}
    assert len(written) == s.shards  # each part names its shard, all with one fingerprint
    table = distributed.read_parts(str(tmp_path / "out"))
    assert table.column("photo").to_pylist() == sorted(table.column("photo").to_pylist())
    cli = cli_json(paths)
    rows = table.to_pylist()
    for name in paths:
        mine = [r for r in rows if r["image"] == name]
        obj = cli[name]
        assert len(mine) == max(1, len(obj["faces"])), name
        if not obj["faces"]:
            assert mine[0]["status"] == obj["status"] and mine[0]["face"] == -1
        for r, f in zip(mine, obj["faces"]):
            assert r["label"] == f.get("label") and r["status"] == f["status"]
            assert r["logits"] == f["logits"]
            assert np.float32(r["box"]).tolist() == np.float32(f["box"]).tolist()
            assert np.float32(r["combined_logits"]).tolist() == np.float32(f["combined_logits"]).tolist()
            assert r["given_label"] in ("female", "male", "none")


def test_a_failed_shard_leaves_the_others_and_a_rerun_computes_only_it(ray_cluster, manifest, tmp_path):
    path, _ = manifest
    whole = run("predict", path, tmp_path / "whole")
    out = tmp_path / "broken"
    # shard 1 cannot be written: a folder stands where its part would go
    (out / distributed.PART.format(1) / "in-the-way").mkdir(parents=True)
    with pytest.raises(distributed.ShardsFailed) as failed:
        run("predict", path, out)
    assert list(failed.value.summary.failed) == [1]
    others = {k: (out / distributed.PART.format(k)).stat().st_mtime_ns for k in range(whole.shards) if k != 1}
    assert len(others) == whole.shards - 1
    shutil.rmtree(out / distributed.PART.format(1))
    again = run("predict", path, out)
    assert again.computed == [1] and sorted(again.skipped) == sorted(others)
    assert {k: (out / distributed.PART.format(k)).stat().st_mtime_ns for k in others} == others
    assert distributed.read_parts(str(out)).equals(distributed.read_parts(str(tmp_path / "whole")))
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_a_changed_model_makes_the_rerun_refuse(ray_cluster, manifest, tmp_path):
    path, _ = manifest
    out = tmp_path / "out"
    run("predict", path, out, shard_size=100)
    done = run("predict", path, out, shard_size=100)  # same model: nothing to do
    assert done.computed == [] and done.skipped == [0]
    with pytest.raises(distributed.FingerprintMismatch, match="model_sha256"):
        run("predict", path, out, shard_size=100, pipeline={"model": "models/gender"})


def test_crops_and_audit_stages(ray_cluster, manifest, tmp_path, pipeline):
    path, paths = manifest
    run("crops", path, tmp_path / "crops", crop=64, scale=0.75)
    table = distributed.read_parts(str(tmp_path / "crops"))
    pixels, cols = pipeline.crops(paths, crop=64, scale=0.75)
    assert table.column("status").to_pylist() == list(cols["status"])
    for row, want, ok in zip(table.to_pylist(), pixels, cols["has_crop"]):
        got = row["crop"]
        assert (got is None) != ok
        if ok:
            assert np.frombuffer(got, np.uint8).reshape(64, 64, 3).tolist() == want.tolist()
    run("audit", path, tmp_path / "audit", label_column="gender")
    audit = distributed.read_parts(str(tmp_path / "audit")).to_pylist()
    predicted = pipeline.predict_paths(paths)
    # every scene is flagged (its label "none" is no class, or it has no face); a FairFace photo
    # only where the model's label for its largest face differs
    flagged = {r["image"] for r in audit}
    assert {p for p in paths if "/scenes/" in p} <= flagged
    for r in audit:
        assert r["reason"] in ("disagrees", "no_face", "unreadable", "too_small", "uncertain")
        if r["reason"] == "disagrees":
            assert r["predicted"] != r["given_label"] and r["predicted"] in predicted["label"]


def test_manifest_errors_are_clear_python_exceptions(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        distributed.read_manifest(str(tmp_path / "nope.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.jpg,male\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['path'\]"):
        distributed.read_manifest(str(bad))
    with pytest.raises(ValueError, match="gender"):
        distributed.read_manifest(str(bad), path_column="file", label_column="gender")
    with pytest.raises(ValueError, match="audit"):
        distributed.run("audit", str(bad), str(tmp_path / "o"), path_column="file", progress=None)


def test_relative_manifest_paths_and_bad_rows_become_status_rows(ray_cluster, tmp_path, root):
    photo = root / "samples" / "fairface" / "female" / "1002.jpg"
    (tmp_path / "imgs").mkdir()
    shutil.copy(photo, tmp_path / "imgs" / "a.jpg")
    (tmp_path / "imgs" / "empty.jpg").write_bytes(b"")
    pq.write_table(pa.table({"path": ["imgs/a.jpg", "imgs/empty.jpg", "imgs/missing.jpg"]}), tmp_path / "m.parquet")
    run("predict", tmp_path / "m.parquet", tmp_path / "out", shard_size=2)
    rows = distributed.read_parts(str(tmp_path / "out")).to_pylist()
    assert [r["image"] for r in rows] == ["imgs/a.jpg", "imgs/empty.jpg", "imgs/missing.jpg"]
    assert [r["status"] for r in rows] == ["ok", "unreadable", "unreadable"]
    assert rows[1]["error"] and rows[2]["error"]


def test_photos_and_parts_through_pyarrow_filesystem_uris(ray_cluster, manifest, tmp_path, pipeline):
    """URIs (here file://, as s3:// would be) are read through pyarrow and labelled from bytes."""
    _, paths = manifest
    uris = ["file://" + p for p in paths[:4]]
    pacsv.write_csv(pa.table({"path": uris}), str(tmp_path / "uris.csv"))
    run("predict", "file://" + str(tmp_path / "uris.csv"), "file://" + str(tmp_path / "out"), shard_size=2)
    rows = distributed.read_parts("file://" + str(tmp_path / "out"))
    local = pipeline.predict_paths(paths[:4])
    assert rows.column("image").to_pylist() == [uris[i] for i in local["photo"]]
    assert rows.column("logits").to_pylist() == local["logits"].tolist()
    assert rows.column("label").to_pylist() == list(local["label"])
