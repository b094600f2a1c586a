"""A deployment bundle on disk: `manifest.json` plus the files it lists, each with its sha256.

Read by apps through `edgetl.runtime.Predictor`, so this module imports the standard library and numpy's
neighbours only (never torch, onnx or the edgetl pipeline). The writer lives in `edgetl.bundle`.

Integrity: `manifest.json` is written in one canonical form (sorted keys, indent 2) and carries the sha256 of
its own content without the `integrity` block; every other file is listed under `files` with its sha256. A
loader re-serialises the manifest and recomputes every hash, so any changed, missing or truncated byte is
caught before a model is loaded. Every file the runtime opens (models, engines, tokenizer) must be listed there
under a relative path that stays inside the bundle, and is checked again right before it is opened.

Authenticity: with `public_key`, `manifest.sig` must be that key's Ed25519 signature of manifest.json's bytes
(`edgetl.runtime.signing`), which also covers every file through its listed sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl.errors import BundleError
from edgetl.runtime.bundle_schema import manifest_problems
from edgetl.runtime.files import sha256_file
from edgetl.runtime.paths import leaves, relpath_problem

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "edgetl-bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
# Backends a layout runs on. "any": an FP32 graph every runtime takes; Q/DQ layouts are made for one runtime
# (ONNX Runtime's u8/asymmetric layout is rejected by TensorRT; TensorRT's runs in ONNX Runtime, only slower).
LAYOUT_BACKENDS = {
    "any": ("onnxruntime", "tensorrt"),
    "onnxruntime": ("onnxruntime",),
    "tensorrt": ("tensorrt", "onnxruntime"),
}


def canonical_json(data: Any) -> str:
    """The one byte form a manifest is written in (and compared against when read)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n"


def content_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "integrity"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def seal(manifest: dict[str, Any]) -> str:
    """Add the integrity block and return the manifest's text."""
    sealed = dict(manifest)
    sealed["integrity"] = {"algorithm": "sha256", "manifest_sha256": content_digest(manifest)}
    return canonical_json(sealed)


@dataclass
class BundleModel:
    """One ONNX model of a bundle (the same network may ship in several Q/DQ layouts)."""

    name: str
    file: str
    precision: str
    layout: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    entry: dict[str, Any] = field(default_factory=dict)  # everything the manifest says about it

    def runs_on(self, backend: str) -> bool:
        return backend in LAYOUT_BACKENDS.get(self.layout, ())


@dataclass
class Bundle:
    root: Path
    manifest: dict[str, Any]
    verify: bool = True  # check a file's size and sha256 each time it is handed out for opening

    @property
    def task(self) -> str:
        return str(self.manifest["task"])

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def models(self) -> list[BundleModel]:
        return [BundleModel(m["name"], m["file"], m["precision"], m.get("layout", "any"), m.get("inputs", []),
                            m.get("outputs", []), m) for m in self.manifest["models"]]

    @property
    def engines(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("engines") or [])

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return dict(self.manifest.get("files") or {})

    def _listed(self, rel: str) -> tuple[Path, dict[str, Any]]:
        meta = self.files.get(rel)
        if meta is None:
            raise BundleError(f"bundle {self.root}: {rel!r} is not listed in {MANIFEST}, so it cannot be verified; "
                              "refusing to open it", hint="only files the manifest hashes are opened")
        problem = relpath_problem(rel)
        p = self.root / rel
        if problem or leaves(self.root, p):
            raise BundleError(f"bundle {self.root}: {rel!r} {problem or 'is a symlink that leaves the bundle'}; "
                              "a bundle file must stay inside the bundle")
        return p, meta

    def path(self, rel: str) -> Path:
        """The path of listed file `rel`, its size and sha256 checked now, right before the caller opens it."""
        p, meta = self._listed(rel)
        if self.verify:
            problem = _file_problem(p, rel, meta)
            if problem:
                raise _integrity_error(self.root, [problem])
        return p

    def read(self, rel: str) -> bytes:
        """The bytes of listed file `rel`, checked against its sha256: parse these, not the file again."""
        p, meta = self._listed(rel)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise _integrity_error(self.root, [f"{rel}: cannot be read ({exc.strerror})"]) from None
        if self.verify:
            problem = _size_or_hash_problem(rel, len(data), hashlib.sha256(data).hexdigest(), meta)
            if problem:
                raise _integrity_error(self.root, [problem])
        return data

    def model(self, name: str | None = None, backend: str = "onnxruntime") -> BundleModel:
        """The named model, or the bundle's default for `backend`."""
        models = {m.name: m for m in self.models}
        if name is not None:
            if name not in models:
                raise BundleError(f"bundle {self.root} has no model {name!r}; it has {', '.join(models)}",
                                  hint="leave `model` unset for the bundle's default, or pass one of the names above")
            return models[name]
        default = (self.manifest.get("defaults") or {}).get(backend)
        if default in models:
            return models[default]
        fits = [m for m in self.models if m.runs_on(backend)]
        if not fits:
            raise BundleError(
                f"bundle {self.root} has no model for the {backend} backend (layouts: "
                f"{', '.join(sorted({m.layout for m in self.models}))})",
                hint="bundle a run that has an FP32 ONNX model or a Q/DQ model in that backend's layout",
            )
        return fits[-1]


def _size_or_hash_problem(rel: str, size: int, sha: str, meta: dict[str, Any]) -> str | None:
    if size != meta.get("size_bytes"):
        return f"{rel}: {size} bytes, the manifest says {meta.get('size_bytes')}"
    if sha != meta.get("sha256"):
        return f"{rel}: sha256 differs from the manifest (the file was changed)"
    return None


def _file_problem(p: Path, rel: str, meta: dict[str, Any]) -> str | None:
    if not p.is_file():
        return f"{rel}: missing"
    size = p.stat().st_size
    if size != meta.get("size_bytes"):  # cheap, and says more than a hash mismatch
        return _size_or_hash_problem(rel, size, "", meta)
    return _size_or_hash_problem(rel, size, sha256_file(p), meta)


def _integrity_error(root: Path, problems: list[str]) -> BundleError:
    return BundleError(f"bundle {root} failed its integrity check ({len(problems)} problem(s)); refusing to load it",
                       problems=problems,
                       hint="the bundle was modified or copied incompletely: copy it again from where "
                            "`edgetl bundle` wrote it, or write it again")


def _problems(root: Path, manifest: dict[str, Any], raw: str) -> list[str]:
    from edgetl.runtime.signing import SIGNATURE

    problems: list[str] = []
    integrity = manifest.get("integrity") or {}
    if raw != canonical_json(manifest):
        problems.append(f"{MANIFEST} is not byte-for-byte what edgetl wrote (it was edited or re-saved)")
    elif integrity.get("manifest_sha256") != content_digest(manifest):
        problems.append(f"{MANIFEST}: its content does not match its recorded sha256 (it was edited)")
    files = manifest["files"]  # its shape was checked by manifest_problems
    for rel, meta in sorted(files.items()):
        p = root / rel
        if leaves(root, p):
            problems.append(f"{rel}: a symlink that leaves the bundle; a bundle file must stay inside the bundle")
        elif problem := _file_problem(p, rel, meta):
            problems.append(problem)
    listed = {root / rel for rel in files} | {root / MANIFEST, root / SIGNATURE}
    extra = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file() and p not in listed]
    if extra:
        log.warning("bundle %s holds files its manifest does not list (ignored): %s", root, ", ".join(extra))
    return problems


def load_bundle(path: str | Path, verify: bool = True, public_key: Any = None) -> Bundle:
    """Read a bundle's manifest and (by default) check every file against it; refuse on any difference.

    public_key: an Ed25519 public key (object, PEM bytes, or PEM file path); the bundle must then carry that
    key's signature of its manifest (`edgetl bundle ... --sign KEY`), or it is refused.
    """
    root = Path(path)
    mp = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"{root} is not a folder", hint="pass the folder written by `edgetl bundle RUN_DIR --out DIR`")
    if not mp.is_file():
        raise BundleError(f"{root} has no {MANIFEST}, so it is not an edgetl bundle (or it is incomplete)",
                          hint="write one with `edgetl bundle RUN_DIR --out DIR`")
    data = mp.read_bytes()
    if public_key is not None:
        if not verify:
            raise BundleError("verify=False with a public_key: the signature covers the files only through their "
                              "sha256, so it means nothing unless they are checked", hint="leave verify on")
        from edgetl.runtime.signing import check_signature

        check_signature(root, data, public_key)  # before the manifest is even parsed
    raw = data.decode("utf-8", errors="replace")
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{mp} is not valid JSON ({exc}): the bundle is damaged",
                          hint="copy the bundle again from where it was written") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise BundleError(f"{mp} is not an edgetl bundle manifest (format={found!r}, expected {BUNDLE_FORMAT!r})")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{mp}: version is {version!r}, expected a bundle format version (an integer from 1)",
                          hint="the manifest was edited or damaged: write the bundle again with `edgetl bundle`")
    if version > BUNDLE_VERSION:
        raise BundleError(f"{mp} is bundle format version {version}; this edgetl reads up to "
                          f"{BUNDLE_VERSION}", hint="upgrade edgetl on the device")
    problems = manifest_problems(manifest, LAYOUT_BACKENDS)
    if problems:
        raise BundleError(f"{mp} is not a valid bundle manifest ({len(problems)} problem(s)); refusing to load it",
                          problems=problems,
                          hint="the manifest was edited or written by something other than `edgetl bundle`: "
                               "write the bundle again with `edgetl bundle RUN_DIR --out DIR`")
    if verify:
        problems = _problems(root, manifest, raw)
        if problems:
            raise _integrity_error(root, problems)
    return Bundle(root, manifest, verify=verify)
