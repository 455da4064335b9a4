"""The data side of `desed_task.training.sed.SEDTask`: its loaders, dataset-scaler fitting, and the loader and
random-generator state saved in checkpoints so that a resumed run draws exactly what the uninterrupted run
drew (worker seeds, sampler epoch, global generators of every DDP rank).

`SEDData` is a mixin of `SEDTask`; it uses the task's `config`, `seed`, `train_data`, `train_batch_sizes`,
`validation_sets()`, `test_data`, `mel`, `scaler`, `batch_generator` and the state `SEDTask.__init__` sets
(`_train_sampler`, `_train_loader_generator`, `_resumed_rng_states`, `_first_epoch`).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from desed_task.data.sampler import MultiSetBatchSampler
from desed_task.training.distributed import (broadcast_buffers, broadcast_from_rank0, capture_rng_states,
                                             gather_objects, rank_entry, restore_rng_states, seed_worker)
from desed_task.utils.files import atomic_path, load_torch_file


class SEDData:
    """Loaders, scaler fitting and exact-resume state of the SED task (a LightningModule mixin)."""

    def _fit_scaler(self) -> None:
        """Dataset statistics of the log-mels, from `scaler.savepath` when it exists, else fitted and saved.

        Fitted on the whole training data (not a rank's share) by global rank 0, which saves the file
        (atomically) and sends the statistics to the other ranks.
        """
        path = self.config["scaler"].get("savepath")
        if path and Path(path).is_file():
            self.scaler.load_state_dict(load_torch_file(path, weights_only=True))
            return
        state = None
        if self.global_rank == 0:
            sizes = [len(dataset) for dataset in self.train_data.datasets]
            sampler = MultiSetBatchSampler(sizes, self.train_batch_sizes, seed=self.seed, num_replicas=1, rank=0)
            loader = DataLoader(self.train_data, batch_sampler=sampler, **self._loader_kwargs())
            self.scaler.fit(loader, transform_func=lambda batch: self.mel(batch[0]))
            state = self.scaler.state_dict()
            if path:
                with atomic_path(path) as tmp:
                    torch.save(state, tmp)
        self.scaler.load_state_dict(broadcast_from_rank0(state))

    def on_train_epoch_start(self) -> None:
        if self._train_sampler is not None:
            self._train_sampler.set_epoch(self.current_epoch)
        self._train_loader_generator.manual_seed(self._epoch_seed(self.current_epoch))
        if self._resumed_rng_states is not None:
            restore_rng_states(self._resumed_rng_states)
            self._resumed_rng_states = None

    def _epoch_seed(self, epoch: int) -> int:
        """Seed of the training loader's workers in `epoch` on this rank: a function of (seed, rank, epoch)
        only, so a resumed run starts its workers exactly as the uninterrupted run did."""
        return (self.seed * 1_000_003 + self.global_rank * 10_007 + epoch) % 2**63

    def on_validation_epoch_start(self) -> None:
        # Each rank's last training steps moved its own batch-norm statistics (DDP only sends rank 0's
        # before a training step): validate rank 0's model, the one that is checkpointed, on every rank.
        broadcast_buffers(self)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["batch_generator_state"] = self.batch_generator.get_state()
        checkpoint["rng_states"] = gather_objects(capture_rng_states())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Single-process checkpoints written before multi-process training named the same generator "mixup".
        state = checkpoint.get("batch_generator_state", checkpoint.get("mixup_generator_state"))
        if state is not None:
            self.batch_generator.set_state(state)
        self._resumed_rng_states = self.rank_state(checkpoint.get("rng_states"), "global random generators")
        self._first_epoch = int(checkpoint.get("epoch", -1)) + 1  # our checkpoints are saved at epoch ends

    def rank_state(self, states: list | None, name: str):
        """This rank's entry of a per-rank state list stored by `on_save_checkpoint` (see `rank_entry`)."""
        world_size = self._trainer.world_size if self._trainer is not None else 1
        return rank_entry(states, self.global_rank, world_size, name)

    # ------------------------------------------------------------------ data loaders
    def _loader_kwargs(self) -> dict:
        workers = int(self.config["training"]["num_workers"])
        generator = torch.Generator().manual_seed(self.seed + self.global_rank)
        return {"num_workers": workers, "worker_init_fn": seed_worker, "generator": generator,
                "persistent_workers": workers > 0}

    def train_dataloader(self):
        """Training loader; its workers restart every epoch, seeded by `_epoch_seed` (exact resume).

        Lightning creates the first epoch's iterator (and multi-process loaders draw their first indices)
        before `on_train_epoch_start`, and, when resuming, before its epoch counter reaches the resumed
        epoch; so the sampler epoch and the worker seeds of that first epoch (0, or the one after the
        checkpoint's) are set here; later epochs get them in `on_train_epoch_start`.
        """
        if self._train_sampler is None:
            raise RuntimeError("no training data (train_data) was given to SEDTask")
        self._train_sampler.set_epoch(self._first_epoch)
        self._train_loader_generator.manual_seed(self._epoch_seed(self._first_epoch))
        kwargs = {**self._loader_kwargs(), "generator": self._train_loader_generator, "persistent_workers": False}
        return DataLoader(self.train_data, batch_sampler=self._train_sampler, **kwargs)

    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        sampler = None
        if self.trainer is not None and self.trainer.world_size > 1:
            sampler = DistributedSampler(dataset, self.trainer.world_size, self.trainer.global_rank, shuffle=False)
        return DataLoader(dataset, batch_size=self.config["training"]["batch_size_val"], shuffle=False,
                          drop_last=False, sampler=sampler, **self._loader_kwargs())

    def val_dataloader(self):
        return [self._eval_loader(dataset) for dataset, _ in self.validation_sets().values()]

    def test_dataloader(self):
        return self._eval_loader(self.test_data)

