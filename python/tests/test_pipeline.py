"""facegender.Pipeline: the same answers as `facegender predict --json`, bad input as rows."""

import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facegender


def assert_rows_equal_cli(cols, cli_objects, names):
    """Every row of `cols` equals the CLI's JSON for its photo: status, label, box, score,
    probability and int8 logits, bit for bit (JSON floats are the f32 values' shortest form)."""
    rows = 0
    for name in names:
        obj = cli_objects[name]
        mine = np.flatnonzero(cols["image"] == name)
        if not obj["faces"]:
            assert len(mine) == 1
            r = mine[0]
            assert cols["status"][r] == obj["status"]
            assert cols["face"][r] == -1 and not cols["has_logits"][r]
            rows += 1
            continue
        assert len(mine) == len(obj["faces"]), name
        for r, f in zip(mine, obj["faces"]):
            assert cols["face"][r] == f["face"]
            assert cols["status"][r] == f["status"]
            assert cols["label"][r] == f.get("label")
            assert cols["box"][r].tolist() == np.float32(f["box"]).tolist()
            assert cols["score"][r] == np.float32(f["score"])
            if "logits" in f:
                assert cols["has_logits"][r]
                assert cols["logits"][r].tolist() == f["logits"]
                assert cols["probability"][r] == np.float32(f["probability"])
            for key in ("head_logits", "combined_logits", "keypoints"):
                if key in f:
                    assert cols[key][r].ravel().tolist() == np.float32(f[key]).ravel().tolist()
            rows += 1
    assert rows == len(cols["image"])


def test_predict_paths_equals_the_cli(pipeline, photos, cli_json):
    cols = pipeline.predict_paths(photos)
    assert_rows_equal_cli(cols, cli_json(photos), photos)
    assert set(cols["status"]) >= {"ok", "no_face"}  # the scenes include photos without a face
    assert cols["landmarks"].shape == (len(cols["image"]), 68, 2)
    assert cols["logits"].dtype == np.int8 and cols["box"].dtype == np.float32


def test_device_chain_and_mirror_equal_the_cli(root, photos, cli_json):
    device = facegender.Pipeline(device_chain=True)
    cols = device.predict_paths(photos)
    assert_rows_equal_cli(cols, cli_json(photos, "--device-chain"), photos)
    assert cols["keypoints"].shape[1:] == (6, 2) and "landmarks" not in cols
    mirrored = facegender.Pipeline(mirror=True, model="models/gender")
    cols = mirrored.predict_paths(photos[:4])
    assert cols["logits"].shape[1] == 4  # the crop's logits, then its mirror image's
    assert_rows_equal_cli(cols, cli_json(photos[:4], "--mirror", "--model", "models/gender"), photos[:4])


def test_bytes_and_arrays_give_the_same_rows_as_files(pipeline, photos):
    from_files = pipeline.predict_paths(photos[:3])
    blobs = [Path(p).read_bytes() for p in photos[:3]]
    from_bytes = pipeline.predict_bytes(blobs, photos[:3])
    for key in ("label", "box", "logits", "status"):
        assert np.array_equal(from_files[key], from_bytes[key]), key
    # decoded pixels: Pillow decodes JPEG with libjpeg-turbo too, so the rows are the same
    first = from_files["image"] == photos[0]
    pixels = np.asarray(Image.open(photos[0]).convert("RGB"))
    from_array = pipeline.predict_array(pixels, name=photos[0])
    assert from_array["logits"].tolist() == from_files["logits"][first].tolist()
    assert from_array["box"].tolist() == from_files["box"][first].tolist()
    # a non-contiguous view (every other column) is copied, not misread
    half = pipeline.predict_array(pixels[:, ::2])
    assert half["image"].tolist() == ["array"] * len(half["image"])


def test_bad_input_is_a_row_never_a_crash(pipeline, tmp_path, photos, cli_json):
    good = Path(photos[0]).read_bytes()
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "text.jpg").write_text("this is not a photo\n")
    (tmp_path / "folder.jpg").mkdir()
    missing = tmp_path / "missing.jpg"
    bad = [tmp_path / n for n in ("empty.jpg", "truncated.jpg", "text.jpg", "folder.jpg")] + [missing]
    cols = pipeline.predict_paths([str(p) for p in bad] + [photos[0]])
    by_image = dict(zip(cols["image"], zip(cols["status"], cols["error"])))
    for p in bad:
        status, error = by_image[str(p)]
        assert status in ("unreadable", "no_face"), (p, status)
        if status == "unreadable":
            assert error, p
    assert by_image[str(missing)][0] == "unreadable"
    assert by_image[str(tmp_path / "empty.jpg")][0] == "unreadable"
    assert by_image[str(tmp_path / "text.jpg")][0] == "unreadable"
    assert by_image[photos[0]][0] == "ok"
    # (the CLI reads a folder as the photos in it, so the folder is left out here)
    unreadable = [str(p) for p in bad if by_image[str(p)][0] == "unreadable" and not p.is_dir()]
    cli = cli_json(unreadable)  # the CLI says the same of each, word for word
    assert {k: (v["status"], v.get("error")) for k, v in cli.items()} == {p: by_image[p] for p in unreadable}
    blobs = pipeline.predict_bytes([b"", b"\x89PNG\r\n\x1a\n", good[:100]])
    assert cols["status"].dtype == object and list(blobs["status"]) == ["unreadable"] * 3
    with pytest.raises(ValueError):
        pipeline.predict_bytes([b""], names=["a", "b"])
    with pytest.raises(ValueError):
        pipeline.predict_array(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(TypeError):
        pipeline.predict_array(np.zeros((10, 10, 3), np.float32))


def test_bad_settings_and_models_are_clear_exceptions(tmp_path):
    with pytest.raises(facegender.FacegenderError, match="not an exported model folder"):
        facegender.Pipeline(model=str(tmp_path))
    with pytest.raises(ValueError, match="detector"):
        facegender.Pipeline(detector="sideways")
    with pytest.raises(facegender.FacegenderError, match="min_probability"):
        facegender.Pipeline(min_probability=2.0)
    with pytest.raises(ValueError, match="threads"):
        facegender.Pipeline(threads=0)


def test_pickles_as_its_settings(pipeline, photos):
    copy = pickle.loads(pickle.dumps(pipeline))
    assert copy.settings == pipeline.settings
    assert copy.model_sha256 == pipeline.model_sha256
    assert copy.predict_paths(photos[:2])["logits"].tolist() == pipeline.predict_paths(photos[:2])["logits"].tolist()


def test_threads_give_the_same_rows_in_the_same_order(photos, pipeline):
    two = facegender.Pipeline(threads=2)
    a, b = pipeline.predict_paths(photos), two.predict_paths(photos)
    assert a["image"].tolist() == b["image"].tolist() and a["logits"].tolist() == b["logits"].tolist()


def test_the_gil_is_released_while_rust_works(pipeline, photos):
    """A Python thread keeps running while predict_paths works in another thread."""
    ticks, done = [], threading.Event()

    def work():
        pipeline.predict_paths(photos * 2)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        ticks.append(1)
        done.wait(0.005)
    t.join()
    assert len(ticks) > 5


def test_crops_equal_preprocess(pipeline, photos, cli, root, tmp_path):
    """`crops` gives preprocess's crops, byte for byte (compared through its PNG files)."""
    import subprocess

    fair = [p for p in photos if "/fairface/" in p][:4]
    for p in fair:
        cls = Path(p).parent.name
        (tmp_path / "in" / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / cls / Path(p).name).symlink_to(root / p)
    subprocess.run(
        [str(cli), "-q", "preprocess", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
         "--crop", "64", "--scale", "0.75"],
        check=True, cwd=root,
    )
    pixels, cols = pipeline.crops(fair, crop=64, scale=0.75)
    assert pixels.shape == (4, 64, 64, 3) and pixels.dtype == np.uint8
    assert list(cols["status"]) == ["ok"] * 4 and cols["has_crop"].all()
    made = facegender.Pipeline(model="models/gender")  # any classifier: crops do not use it
    again, _ = made.crops(fair, crop=64, scale=0.75)
    assert np.array_equal(pixels, again)
    for p, crop in zip(fair, pixels):
        png = tmp_path / "out" / Path(p).parent.name / (Path(p).stem + ".png")
        assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), crop), p
    _, bad = pipeline.crops(["samples/scenes/no-face-wall.jpg", "nope.jpg"])
    assert list(bad["status"]) == ["no_face", "unreadable"] and not bad["has_crop"].any()
    with pytest.raises(ValueError, match="align"):
        pipeline.crops(fair, align="crooked")
