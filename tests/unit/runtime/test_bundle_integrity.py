"""A bundle is loaded only when every byte is what `edgetl bundle` wrote; anything else is refused clearly."""

import json
import logging

import numpy as np
import pytest

from edgetl.runtime import Predictor
from edgetl.runtime.bundle import BundleError, canonical_json, load_bundle


def _flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def test_an_untouched_bundle_loads_and_predicts(vision_bundle):
    bundle = load_bundle(vision_bundle.root)
    assert bundle.labels == ["cat", "dog", "bird", "fish"]
    assert Predictor.from_bundle(vision_bundle.root).predict(np.zeros((8, 8), dtype=np.uint8)).label in bundle.labels


def test_one_changed_byte_in_the_model_is_refused_and_named(vision_bundle):
    _flip_byte(vision_bundle.root / "models/m/model.onnx")
    with pytest.raises(BundleError) as err:
        Predictor.from_bundle(vision_bundle.root)
    assert "integrity check" in str(err.value)
    assert err.value.problems == ["models/m/model.onnx: sha256 differs from the manifest (the file was changed)"]
    assert "copy it again" in err.value.hint


def test_a_changed_label_in_the_manifest_is_refused(vision_bundle):
    mp = vision_bundle.root / "manifest.json"
    mp.write_text(mp.read_text().replace('"dog"', '"cow"'))
    with pytest.raises(BundleError) as err:
        load_bundle(vision_bundle.root)
    assert any("manifest.json" in p and "edited" in p for p in err.value.problems)


@pytest.mark.parametrize("edit", ["whitespace", "byte"])
def test_any_byte_edit_of_the_manifest_is_refused(vision_bundle, edit):
    mp = vision_bundle.root / "manifest.json"
    text = mp.read_text()
    if edit == "whitespace":  # same JSON content, different bytes
        mp.write_text(text.replace('"format"', ' "format"', 1))
    else:
        _flip_byte(mp, offset=text.index('"sha256"') + 3)  # "sha256" -> "sia256": still valid JSON
    with pytest.raises(BundleError):
        load_bundle(vision_bundle.root)


def test_a_missing_or_truncated_file_makes_the_bundle_incomplete(vision_bundle):
    model = vision_bundle.root / "models/m/model.onnx"
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(BundleError, match="1 problem") as err:
        load_bundle(vision_bundle.root)
    assert "bytes, the manifest says" in err.value.problems[0]
    model.unlink()
    with pytest.raises(BundleError) as err:
        load_bundle(vision_bundle.root)
    assert err.value.problems == ["models/m/model.onnx: missing"]


def test_damaged_json_and_foreign_folders_are_not_bundles(vision_bundle, tmp_path):
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="not a folder"):
        load_bundle(tmp_path / "nowhere")
    mp = vision_bundle.root / "manifest.json"
    mp.write_text(mp.read_text()[:-20])
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(vision_bundle.root)
    mp.write_text(canonical_json({"format": "something-else"}))
    with pytest.raises(BundleError, match="not an edgetl bundle manifest"):
        load_bundle(vision_bundle.root)


def test_a_manifest_path_outside_the_bundle_is_refused(vision_bundle):
    from edgetl.runtime.bundle import seal

    mp = vision_bundle.root / "manifest.json"
    manifest = json.loads(mp.read_text())
    manifest.pop("integrity")
    manifest["files"]["../outside.bin"] = {"sha256": "0" * 64, "size_bytes": 1}
    mp.write_text(seal(manifest))
    with pytest.raises(BundleError) as err:
        load_bundle(vision_bundle.root)
    assert err.value.problems == [
        "files: '../outside.bin' holds '..'; a bundle path is relative and stays inside the bundle (like "
        "models/m/model.onnx)"]


def test_a_newer_format_version_asks_for_an_upgrade(vision_bundle):
    from edgetl.runtime.bundle import seal

    mp = vision_bundle.root / "manifest.json"
    manifest = json.loads(mp.read_text())
    manifest.pop("integrity")
    manifest["version"] = 99
    mp.write_text(seal(manifest))
    with pytest.raises(BundleError, match="version 99") as err:
        load_bundle(vision_bundle.root)
    assert "upgrade" in err.value.hint


def test_extra_files_are_reported_but_do_not_block_loading(vision_bundle, caplog):
    (vision_bundle.root / "notes.txt").write_text("added by the app")
    with caplog.at_level(logging.WARNING):
        load_bundle(vision_bundle.root)
    assert "notes.txt" in caplog.text


def test_verification_can_be_skipped_explicitly(vision_bundle):
    _flip_byte(vision_bundle.root / "models/m/model.onnx", offset=0)  # breaks the protobuf header too
    assert load_bundle(vision_bundle.root, verify=False).labels  # the manifest is still read
    with pytest.raises(BundleError):
        load_bundle(vision_bundle.root)
