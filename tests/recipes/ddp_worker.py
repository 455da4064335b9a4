"""Entry script of `test_ddp.py`: a recipe's `main` whose task records, on every rank, what the rank trained,
validated and tested on, into `<log_dir>/ranks/rank<R>_<stage>.json` (and its final weights, `.pt`).

    python tests/recipes/ddp_worker.py {sed|irct} --log_dir D [train_sed.py flags and overrides ...] \
        [--then {sed|irct} --log_dir D2 ...]

Launched by Lightning itself (`--accelerator cpu --devices 2` re-runs this script for rank 1) or by torchrun.
Under torchrun, `--then` runs more recipes one after the other in the same processes (and process group),
which saves starting and importing for each.
Every checkpoint and score-file write is also listed, with the writing rank, in `ranks/writes.tsv`; psds_eval
and the PSD-ROC plots are skipped (cheap_metrics.py), as in the in-process runs they are compared with.
"""
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from pytorch_lightning.plugins.io import TorchCheckpointIO

from desed_task.training import run
from desed_task.training.irct import IRCTTask
from desed_task.training.sed import SEDTask
from cheap_metrics import use_cheap_test_metrics


def log_writes(kind: str, write, path_argument: int):
    """`write` that first appends `rank<TAB>kind<TAB>path` to `ranks/writes.tsv` of the current `--log_dir`."""
    def logged(*args, **kwargs):
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        folder = Path(CURRENT["log_dir"]) / "ranks"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "writes.tsv", "a") as f:
            f.write(f"{rank}\t{kind}\t{Path(args[path_argument]).name}\n")
        return write(*args, **kwargs)
    return logged


def recording(base: type[SEDTask]) -> type[SEDTask]:
    class Recording(base):
        def setup(self, stage):
            super().setup(stage)
            self.record = {"world_size": self.trainer.world_size, "rank": self.global_rank, "train_ids": {},
                           "mixup": [], "views": [], "augmentations": [], "mixup_permutations": [],
                           "local_ids": {}, "collected_ids": {}, "metric_calls": [], "start": None}

        def on_train_start(self):
            super().on_train_start()
            optimizer = self.trainer.optimizers[0]
            self.record["start"] = {
                "epoch": self.current_epoch, "global_step": self.global_step,
                "adam_steps": sorted({float(state["step"]) for state in optimizer.state.values()}),
                "sampler_len": len(self._train_sampler),
                "batch_generator": self.batch_generator.get_state().tolist()[:32],
            }

        def training_step(self, batch, batch_idx):
            self.record["train_ids"].setdefault(str(self.current_epoch), []).extend(batch[3])
            return super().training_step(batch, batch_idx)

        def mixup_this_step(self):
            decision = super().mixup_this_step()
            self.record["mixup"].append(decision)
            return decision

        def rank_permutation(self, size):
            replay = torch.Generator()
            replay.set_state(self.batch_generator.get_state())
            permutation = super().rank_permutation(size)
            drawn = [torch.randperm(size, generator=replay).tolist() for _ in range(self.trainer.world_size)]
            self.record["mixup_permutations"].append({"drawn": drawn, "used": permutation.tolist()})
            return permutation

        def augment(self, batch, mel_amplitude):
            batch = super().augment(batch, mel_amplitude)
            if hasattr(batch, "supervised_view"):
                self.record["views"].append(batch.supervised_view)
                self.record["augmentations"].append([part.info.augmentation.name for part in batch.views.parts])
            return batch

        def _buffer(self, name, **values):
            self.record["local_ids"].setdefault(name, []).extend(values["file_id"])
            super()._buffer(name, **values)

        def _collect(self, name):
            merged = super()._collect(name)
            self.record["collected_ids"].setdefault(name, []).append(list(merged.get("file_id", [])))
            return merged

        def _validation_metrics(self, synth, weak):
            results = super()._validation_metrics(synth, weak)
            self.record["metric_calls"].append({"validation": results})
            return results

        def _test_metrics(self, outputs):
            results = super()._test_metrics(outputs)
            self.record["metric_calls"].append({"test": results})
            return results

        def _write(self, stage: str) -> None:
            folder = self.log_dir / "ranks"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"rank{self.global_rank}_{stage}.json").write_text(json.dumps(self.record))

        def on_train_end(self):
            super().on_train_end()
            self._write("fit")
            torch.save({k: v.clone() for k, v in self.state_dict().items()},
                       self.log_dir / "ranks" / f"rank{self.global_rank}_fit.pt")

        def on_test_end(self):
            super().on_test_end()
            self._write("test")

    Recording.__name__ = f"Recording{base.__name__}"
    return Recording


CURRENT = {"log_dir": "."}

if __name__ == "__main__":
    TorchCheckpointIO.save_checkpoint = log_writes("checkpoint", TorchCheckpointIO.save_checkpoint, 2)
    run.write_scores = log_writes("scores", run.write_scores, 0)
    use_cheap_test_metrics()
    segments, segment = [], []
    for arg in sys.argv[1:]:
        if arg == "--then":
            segments.append(segment)
            segment = []
        else:
            segment.append(arg)
    for recipe, *argv in [*segments, segment]:
        CURRENT["log_dir"] = argv[argv.index("--log_dir") + 1]
        run.main(argv, task_cls=recording({"sed": SEDTask, "irct": IRCTTask}[recipe]))
