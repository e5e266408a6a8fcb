"""History of generated images for the discriminator (Shrivastava et al. 2017, used by Zhu et al. 2017).

Semantics of the classic CycleGAN ``ImagePool``: until the pool holds ``size`` images each new image is
stored and returned; afterwards, with probability 0.5 a random stored image is returned and replaced by
the new one, otherwise the new image is returned. Unlike the classic pool it draws from its own seeded
generator and its images and generator state are saved in checkpoints, so a resumed run sees the same
history. Each DDP rank keeps its own pool (as each process would in the classic code); rank 0's is saved.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ImagePool:
    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: Tensor) -> Tensor:
        """Images for the discriminator, one per input image (detached)."""
        if self.size == 0:
            return images.detach()
        if self.images and self.images[0].device != images.device:  # restored from a CPU checkpoint
            self.images = [image.to(images.device) for image in self.images]
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=self.generator).item() > 0.5:
                index = int(torch.randint(self.size, (1,), generator=self.generator).item())
                out.append(self.images[index])
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Tensor]:
        stored = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"images": stored, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.images = list(state["images"]) if state["images"].numel() else []
        self.generator.set_state(state["generator"])
