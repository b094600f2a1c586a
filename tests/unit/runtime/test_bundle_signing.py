"""Signed bundles: with a public key, the runtime loads only a bundle whose manifest.sig is that key's signature;
the hashes alone cannot stop someone who swaps a file and recomputes them."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from edgetl.runtime import Predictor
from edgetl.runtime.bundle import BundleError, load_bundle
from edgetl.runtime.signing import SIGNATURE, sign_bundle

MODEL = "models/m/model.onnx"
FRAME = np.zeros((8, 8), dtype=np.uint8)


def _pem_pair(folder, name="key"):
    key = ed25519.Ed25519PrivateKey.generate()
    private = folder / f"{name}.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = folder / f"{name}.pub.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture
def keys(tmp_path):
    return _pem_pair(tmp_path)


def test_a_signed_bundle_loads_and_predicts_with_the_key_as_path_bytes_or_object(vision_bundle, keys):
    private, public = keys
    sign_bundle(vision_bundle.root, private)
    expected = Predictor.from_bundle(vision_bundle.root).predict(FRAME)
    key_object = serialization.load_pem_public_key(public.read_bytes())
    for key in (public, str(public), public.read_bytes(), public.read_text(), key_object):
        got = Predictor.from_bundle(vision_bundle.root, public_key=key).predict(FRAME)
        assert (got.label, got.score) == (expected.label, expected.score)
    assert (vision_bundle.root / SIGNATURE).stat().st_size == 64


def test_an_unsigned_bundle_is_refused_when_a_key_is_given(vision_bundle, keys):
    with pytest.raises(BundleError, match="is not signed") as err:
        Predictor.from_bundle(vision_bundle.root, public_key=keys[1])
    assert "--sign" in err.value.hint


def test_a_swapped_model_with_recomputed_hashes_passes_the_hashes_but_not_the_signature(
        vision_bundle, keys, reseal, foreign_model):
    private, public = keys
    sign_bundle(vision_bundle.root, private)
    honest = Predictor.from_bundle(vision_bundle.root).predict(FRAME).label
    shutil.copyfile(foreign_model, vision_bundle.root / MODEL)
    reseal(vision_bundle.root, rehash=True)  # what an attacker who can write the folder does
    assert Predictor.from_bundle(vision_bundle.root).predict(FRAME).label == "fish" != honest
    with pytest.raises(BundleError, match="not a signature of this manifest.json by the given key") as err:
        Predictor.from_bundle(vision_bundle.root, public_key=public)
    assert "changed after signing" in err.value.hint


def test_an_edited_label_resealed_is_refused(vision_bundle, keys, reseal):
    private, public = keys
    sign_bundle(vision_bundle.root, private)
    reseal(vision_bundle.root, lambda m: m["labels"].__setitem__(0, "tiger"))
    assert load_bundle(vision_bundle.root).labels[0] == "tiger"
    with pytest.raises(BundleError, match="not a signature"):
        load_bundle(vision_bundle.root, public_key=public)


def test_another_keys_signature_and_a_truncated_signature_are_refused(vision_bundle, keys, tmp_path):
    other_private, _ = _pem_pair(tmp_path, "other")
    sign_bundle(vision_bundle.root, other_private)
    with pytest.raises(BundleError, match="not a signature"):
        Predictor.from_bundle(vision_bundle.root, public_key=keys[1])
    sig = vision_bundle.root / SIGNATURE
    sign_bundle(vision_bundle.root, keys[0])
    sig.write_bytes(sig.read_bytes()[:-1])
    with pytest.raises(BundleError, match="not a signature"):
        Predictor.from_bundle(vision_bundle.root, public_key=keys[1])


def test_a_file_changed_after_signing_is_still_caught_by_its_hash(vision_bundle, keys):
    sign_bundle(vision_bundle.root, keys[0])
    data = bytearray((vision_bundle.root / MODEL).read_bytes())
    data[-3] ^= 0x01
    (vision_bundle.root / MODEL).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="integrity check"):
        Predictor.from_bundle(vision_bundle.root, public_key=keys[1])


def test_a_key_cannot_be_combined_with_skipping_verification(vision_bundle, keys):
    sign_bundle(vision_bundle.root, keys[0])
    with pytest.raises(BundleError, match="verify=False with a public_key"):
        Predictor.from_bundle(vision_bundle.root, public_key=keys[1], verify=False)


def test_wrong_key_material_is_a_clear_bundle_error(vision_bundle, keys, tmp_path):
    private, public = keys
    sign_bundle(vision_bundle.root, private)
    with pytest.raises(BundleError, match="not a PEM public key") as err:
        load_bundle(vision_bundle.root, public_key=private)  # the private half by mistake
    assert "-pubout" in err.value.hint
    with pytest.raises(BundleError, match=r"public key file .*missing\.pem does not exist"):
        load_bundle(vision_bundle.root, public_key=tmp_path / "missing.pem")
    with pytest.raises(BundleError, match="signing key .*pub.pem is not a PEM private key"):
        sign_bundle(vision_bundle.root, public)
    with pytest.raises(BundleError, match="expected an Ed25519 public key"):
        load_bundle(vision_bundle.root, public_key=12345)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line tool")
def test_keys_made_with_openssl_as_the_docs_say_work(vision_bundle, tmp_path):
    private, public = tmp_path / "bundle-key.pem", tmp_path / "bundle-key.pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True)
    sign_bundle(vision_bundle.root, private)
    assert Predictor.from_bundle(vision_bundle.root, public_key=public).predict(FRAME).label
    check = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-rawin",
                            "-in", str(vision_bundle.root / "manifest.json"), "-sigfile",
                            str(vision_bundle.root / SIGNATURE)], capture_output=True, text=True)
    assert "Signature Verified Successfully" in check.stdout


def test_without_cryptography_asking_for_a_signature_check_says_what_to_install(vision_bundle, keys):
    code = ("import sys; sys.modules['cryptography'] = None\n"
            "from edgetl.runtime.bundle import load_bundle\n"
            "from edgetl.errors import BackendUnavailableError\n"
            f"try:\n    load_bundle({str(vision_bundle.root)!r}, public_key={str(keys[1])!r})\n"
            "except BackendUnavailableError as e:\n    print(e.render())\n"
            f"print(len(load_bundle({str(vision_bundle.root)!r}).models))")  # unsigned loading needs none
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "needs the `cryptography` package" in out and "edgetl[sign]" in out and out.strip().endswith("1")
