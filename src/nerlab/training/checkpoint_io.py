"""Lightning checkpoints written through ``nerlab.files.atomic_path``: a run killed while it
saves leaves the previous checkpoint intact rather than a truncated file."""

from __future__ import annotations

from lightning.pytorch.plugins.io import TorchCheckpointIO

from nerlab.files import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)
