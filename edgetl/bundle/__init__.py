"""Deployment bundles: `write_bundle_from_run` (the `edgetl bundle` command) and `assemble` (shared with the
`bundle` stage). Reading a bundle is `edgetl.runtime` (torch-free).

`edgetl.bundle(models, out)` is the public function (`api.py`): a bundle from exported ONNX files."""

from edgetl._technique import make_callable
from edgetl.bundle.writer import assemble, write_bundle_from_run

make_callable(__name__, "edgetl.bundle.api:bundle")

__all__ = ["assemble", "write_bundle_from_run"]
