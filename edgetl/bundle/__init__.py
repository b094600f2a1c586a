"""Deployment bundles: `write_bundle_from_run` (the `edgetl bundle` command) and `assemble` (shared with the
`bundle` stage). Reading a bundle is `edgetl.runtime` (torch-free)."""

from edgetl.bundle.writer import assemble, write_bundle_from_run

__all__ = ["assemble", "write_bundle_from_run"]
