"""Ed25519 signatures of bundles, for over-the-air updates.

`manifest.json` lists every file of a bundle with its sha256, so a signature of its exact bytes covers the
whole bundle: `manifest.sig` holds the raw 64-byte signature (what `openssl pkeyutl -sign -rawin` writes).
The hashes alone catch corruption; only the signature stops someone who can write the bundle folder and
recompute them. `cryptography` is imported on first use (`pip install 'edgetl[sign]'`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgetl.errors import BackendUnavailableError, BundleError

SIGNATURE = "manifest.sig"
KEYGEN_HINT = ("make a key pair with `openssl genpkey -algorithm ed25519 -out bundle-key.pem` and "
               "`openssl pkey -in bundle-key.pem -pubout -out bundle-key.pub.pem`")


def _ed25519():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise BackendUnavailableError(
            "signing or checking a bundle signature needs the `cryptography` package, which is not installed",
            hint="pip install 'edgetl[sign]' (or pip install cryptography)",
        ) from None
    return serialization, ed25519


def _read_key_file(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise BundleError(f"{what} {path} does not exist or is not a file", hint=KEYGEN_HINT)
    return path.read_bytes()


def load_private_key(path: str | Path) -> Any:
    """An Ed25519 private key from an unencrypted PEM file (`openssl genpkey -algorithm ed25519`)."""
    serialization, ed25519 = _ed25519()
    path = Path(path)
    data = _read_key_file(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise BundleError(f"signing key {path} is encrypted; edgetl reads unencrypted PEM keys",
                          hint=f"write a decrypted copy with `openssl pkey -in {path} -out plain.pem` and keep "
                               "it where only the build machine can read it") from None
    except ValueError as exc:
        raise BundleError(f"signing key {path} is not a PEM private key ({exc})", hint=KEYGEN_HINT) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BundleError(f"signing key {path} is a {type(key).__name__}; bundles are signed with Ed25519 keys",
                          hint=KEYGEN_HINT)
    return key


def load_public_key(key: Any) -> Any:
    """An Ed25519 public key from a key object, PEM bytes or text, or the path of a PEM file."""
    serialization, ed25519 = _ed25519()
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, str) and "-----BEGIN" in key:
        key = key.encode()
    if isinstance(key, (str, os.PathLike)):
        where = f"public key file {key}"
        data = _read_key_file(Path(key), "public key file")
    elif isinstance(key, bytes):
        where, data = "the public key bytes", key
    else:
        raise BundleError(f"public_key: got {type(key).__name__}, expected an Ed25519 public key, PEM bytes or "
                          "the path of a PEM file")
    try:
        loaded = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise BundleError(f"{where} is not a PEM public key ({exc})",
                          hint="pass the public half: `openssl pkey -in bundle-key.pem -pubout -out "
                               "bundle-key.pub.pem`") from None
    if not isinstance(loaded, ed25519.Ed25519PublicKey):
        raise BundleError(f"{where} is a {type(loaded).__name__}; bundles are signed with Ed25519 keys",
                          hint=KEYGEN_HINT)
    return loaded


def sign_bundle(root: str | Path, key: Any) -> Path:
    """Sign `root/manifest.json` with `key` (a private key object or the path of its PEM file); write manifest.sig."""
    from edgetl.runtime.bundle import MANIFEST

    root = Path(root)
    if not isinstance(key, _ed25519()[1].Ed25519PrivateKey):
        key = load_private_key(key)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise BundleError(f"{root} has no {MANIFEST}, so there is no bundle to sign",
                          hint="write one with `edgetl bundle RUN_DIR --out DIR --sign KEY`")
    out = root / SIGNATURE
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(key.sign(manifest.read_bytes()))
    os.replace(tmp, out)
    return out


def check_signature(root: Path, manifest_bytes: bytes, public_key: Any) -> None:
    """Refuse unless `root/manifest.sig` is `public_key`'s signature of exactly `manifest_bytes`."""
    key = load_public_key(public_key)  # first: it says so when cryptography is missing
    from cryptography.exceptions import InvalidSignature

    sig_path = root / SIGNATURE
    if not sig_path.is_file():
        raise BundleError(f"bundle {root} is not signed (no {SIGNATURE}) and a public key was given; refusing to load it",
                          hint="sign it where it is built: `edgetl bundle RUN_DIR --out DIR --sign KEY`")
    try:
        key.verify(sig_path.read_bytes(), manifest_bytes)
    except InvalidSignature:
        raise BundleError(
            f"bundle {root}: {SIGNATURE} is not a signature of this manifest.json by the given key; refusing to load it",
            hint="the manifest was changed after signing, or signed with another key: install the bundle again "
                 "from its signed source, or check which public key the device holds",
        ) from None
