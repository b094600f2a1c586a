"""A bundle opens only files its manifest lists and hashes, inside the bundle; a malformed manifest is a
BundleError that names the field, never a stray KeyError or ValueError."""

import os
import shutil

import numpy as np
import pytest

from edgetl.errors import EdgetlError, ModelError
from edgetl.runtime import Predictor
from edgetl.runtime.bundle import BundleError, load_bundle

MODEL = "models/m/model.onnx"


def _refused(root, match: str) -> BundleError:
    with pytest.raises(BundleError) as err:
        Predictor.from_bundle(root)
    text = err.value.render()
    assert match in text, text
    return err.value


def _set_model_file(value):
    def edit(manifest):
        manifest["models"][0]["file"] = value
    return edit


def test_a_model_file_outside_the_bundle_is_never_loaded(vision_bundle, reseal, foreign_model):
    reseal(vision_bundle.root, _set_model_file(os.path.relpath(foreign_model, vision_bundle.root)))
    _refused(vision_bundle.root, "models.0.file: '../outside/evil.onnx' holds '..'")
    reseal(vision_bundle.root, _set_model_file(str(foreign_model)))
    _refused(vision_bundle.root, "is an absolute path")


@pytest.mark.parametrize("value", ["models/../models/m/model.onnx", "models\\m\\model.onnx", "models//m/model.onnx",
                                   "./models/m/model.onnx", "models/m/model.onnx\x00.txt", "C:/models/m/model.onnx",
                                   "", 7, None])
def test_odd_model_paths_are_refused(vision_bundle, reseal, value):
    reseal(vision_bundle.root, _set_model_file(value))
    _refused(vision_bundle.root, "models.0.file:")


def test_an_unlisted_model_file_inside_the_bundle_is_refused(vision_bundle, reseal, foreign_model):
    shutil.copyfile(foreign_model, vision_bundle.root / "models/m/other.onnx")
    reseal(vision_bundle.root, _set_model_file("models/m/other.onnx"))
    _refused(vision_bundle.root, "models.0.file: 'models/m/other.onnx' is not listed under files")


def test_an_unlisted_engine_is_refused(vision_bundle, reseal):
    (vision_bundle.root / "engines").mkdir()
    (vision_bundle.root / "engines/m.plan").write_bytes(b"not listed")

    def edit(manifest):
        manifest["engines"] = [{"name": "m_engine", "file": "engines/m.plan", "onnx": "m"}]

    reseal(vision_bundle.root, edit)
    _refused(vision_bundle.root, "engines.0.file: 'engines/m.plan' is not listed under files")


def test_an_unlisted_or_escaping_tokenizer_is_refused(text_bundle, reseal):
    shutil.copyfile(text_bundle.root / "tokenizer.json", text_bundle.root / "other.json")

    def tokenizer(value):
        def edit(manifest):
            manifest["preprocessing"]["tokenizer_file"] = value
        return edit

    reseal(text_bundle.root, tokenizer("other.json"))
    _refused(text_bundle.root, "preprocessing.tokenizer_file: 'other.json' is not listed under files")
    reseal(text_bundle.root, tokenizer("../tokenizer.json"))
    _refused(text_bundle.root, "preprocessing.tokenizer_file: '../tokenizer.json' holds '..'")


def test_labels_come_only_from_the_hashed_manifest(vision_bundle, reseal):
    (vision_bundle.root / "labels.txt").write_text("a\nb\nc\nd\n")
    reseal(vision_bundle.root, lambda m: m.update(labels="labels.txt"))  # no labels file is ever read
    _refused(vision_bundle.root, "labels: got 'labels.txt', expected a non-empty list of strings")


@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_symlink_leaving_the_bundle_is_refused_even_with_the_right_bytes(vision_bundle, tmp_path, link):
    outside = tmp_path / "elsewhere"
    shutil.copytree(vision_bundle.root / "models", outside)  # same bytes: the hash alone would pass
    if link == "file":
        (vision_bundle.root / MODEL).unlink()
        (vision_bundle.root / MODEL).symlink_to(outside / "m/model.onnx")
    else:
        shutil.rmtree(vision_bundle.root / "models")
        (vision_bundle.root / "models").symlink_to(outside, target_is_directory=True)
    err = _refused(vision_bundle.root, "a symlink that leaves the bundle")
    assert err.problems == [f"{MODEL}: a symlink that leaves the bundle; a bundle file must stay inside the bundle"]


def test_a_symlink_inside_the_bundle_is_fine(vision_bundle, reseal):
    (vision_bundle.root / "models/m/real.onnx").write_bytes((vision_bundle.root / MODEL).read_bytes())
    (vision_bundle.root / MODEL).unlink()
    (vision_bundle.root / MODEL).symlink_to("real.onnx")
    reseal(vision_bundle.root, lambda m: m["files"].update({"models/m/real.onnx": m["files"][MODEL]}))
    assert Predictor.from_bundle(vision_bundle.root).predict(np.zeros((8, 8), dtype=np.uint8)).label


def test_a_file_changed_after_loading_is_caught_when_it_is_opened(vision_bundle):
    bundle = load_bundle(vision_bundle.root)
    data = bytearray((vision_bundle.root / MODEL).read_bytes())
    data[-5] ^= 0x01
    (vision_bundle.root / MODEL).write_bytes(bytes(data))
    for open_it in (bundle.read, bundle.path):
        with pytest.raises(BundleError) as err:
            open_it(MODEL)
        assert err.value.problems == [f"{MODEL}: sha256 differs from the manifest (the file was changed)"]
    with pytest.raises(BundleError, match="not listed"):
        bundle.read("manifest.json")


def _drop(*keys):
    def edit(manifest):
        target = manifest
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]
    return edit


def _put(value, *keys):
    def edit(manifest):
        target = manifest
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return edit


MALFORMED = {
    "version text": (_put("x", "version"), "version is 'x'"),
    "version bool": (_put(True, "version"), "version is True"),
    "version zero": (_put(0, "version"), "version is 0"),
    "task": (_put("audio", "task"), "task: got 'audio'"),
    "labels ints": (_put([1, 2], "labels"), "labels: got [1, 2]"),
    "labels missing": (_drop("labels"), "labels: got None"),
    "models empty": (_put([], "models"), "models: got [], expected a non-empty list"),
    "models object": (_put({"name": "m"}, "models"), "models: got {'name': 'm'}"),
    "model not object": (_put(["m"], "models"), "models.0: got str, expected an object"),
    "model name missing": (_drop("models", 0, "name"), "models.0.name: got None"),
    "model name path": (_put("../../x", "models", 0, "name"), "models.0.name: got '../../x'"),
    "model layout": (_put("gpu", "models", 0, "layout"), "models.0.layout: got 'gpu'"),
    "model precision": (_drop("models", 0, "precision"), "models.0.precision: got None"),
    "model inputs": (_put("pixel_values", "models", 0, "inputs"), "models.0.inputs: got str, expected a list"),
    "engine fields": (_put([{"name": "e"}], "engines"), "engines.0.file: None is not a string"),
    "defaults": (_put(["m"], "defaults"), "defaults: got ['m']"),
    "files list": (_put([MODEL], "files"), "files: got list"),
    "sha256": (_put("abc", "files", MODEL, "sha256"), f"files.{MODEL}.sha256: got 'abc'"),
    "size text": (_put("12", "files", MODEL, "size_bytes"), f"files.{MODEL}.size_bytes: got '12'"),
    "preprocessing missing": (_drop("preprocessing"), "preprocessing: got null, expected an object"),
    "preprocessing size": (_put("8", "preprocessing", "size"), "preprocessing.size: got '8'"),
    "preprocessing std": (_put([0, 1, 1], "preprocessing", "std"), "preprocessing.std: got [0, 1, 1], expected no zero"),
    "preprocessing kind": (_put("text", "preprocessing", "kind"), "preprocessing.kind: got 'text'"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_manifest_is_a_bundle_error_naming_the_field(vision_bundle, reseal, case):
    edit, expected = MALFORMED[case]
    reseal(vision_bundle.root, edit)
    for verify in (True, False):  # skipping the hashes never skips the structure
        with pytest.raises(BundleError) as err:
            Predictor.from_bundle(vision_bundle.root, verify=verify)
        assert expected in err.value.render(), err.value.render()
        assert isinstance(err.value, ModelError) and isinstance(err.value, EdgetlError)
