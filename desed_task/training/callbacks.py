"""Energy accounting of training and test runs with codecarbon, written like the DCASE baselines."""
from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl

from desed_task.utils.environment import write_environment

log = logging.getLogger(__name__)


class _Tracker:
    """One offline codecarbon tracker writing `<folder>/<kwh_file>`; every failure becomes a warning."""

    def __init__(self, folder: Path, kwh_file: str, project_name: str, country_iso_code: str):
        self.folder = folder
        self.kwh_file = kwh_file
        self.tracker = None
        try:
            from codecarbon import OfflineEmissionsTracker

            # codecarbon logs at INFO/WARNING level (tracker init, "multiple instances allowed") before it
            # applies `log_level`, at every start: only its errors are of interest here.
            logging.getLogger("codecarbon").setLevel(logging.ERROR)
            folder.mkdir(parents=True, exist_ok=True)
            self.tracker = OfflineEmissionsTracker(
                project_name=project_name,
                output_dir=str(folder),
                country_iso_code=country_iso_code,
                log_level="error",
            )
            self.tracker.start()
        except Exception as error:  # codecarbon must never stop a run
            log.warning("codecarbon tracker %s could not start: %s", project_name, error)
            self.tracker = None

    def energy_so_far(self) -> float:
        """kWh measured since `start` (0 when unavailable); codecarbon has no public running total."""
        if self.tracker is None:
            return 0.0
        try:
            self.tracker._measure_power_and_energy()
            return float(self.tracker._total_energy.kWh)
        except Exception as error:
            log.warning("codecarbon tracker could not report energy so far: %s", error)
            return 0.0

    def stop(self, earlier_kwh: float = 0.0) -> float | None:
        """Stop tracking and write `earlier_kwh` + the energy consumed since `start` (kWh); None when unavailable."""
        if self.tracker is None:
            return None
        try:
            self.tracker.stop()
            kwh = earlier_kwh + float(self.tracker.final_emissions_data.energy_consumed)
            (self.folder / self.kwh_file).write_text(str(kwh))
            return kwh
        except Exception as error:
            log.warning("codecarbon tracker could not report energy: %s", error)
            return None


class CodeCarbonCallback(pl.Callback):
    """Tracks the energy of fit and test (or evaluation) runs on the global rank 0.

    Writes `<log_dir>/training_codecarbon/training_tot_kwh.txt`, `<log_dir>/devtest_codecarbon/
    devtest_tot_kwh.txt` (or `evaluation_codecarbon/eval_tot_kwh.txt` when `evaluation`) and logs
    `train/tot_energy_kWh`, `test/tot_energy_kWh` / `eval/tot_energy_kWh`. Works offline: the
    carbon intensity comes from `country_iso_code`. The training energy measured up to each checkpoint
    is saved in it, so a resumed run reports the energy of the whole training, not of its last part.
    """

    def __init__(self, log_dir: str | Path, evaluation: bool = False, country_iso_code: str = "FRA"):
        self.log_dir = Path(log_dir)
        self.evaluation = evaluation
        self.country_iso_code = country_iso_code
        self._train = None
        self._test = None
        self._training_kwh_before = 0.0  # training energy of the runs this one resumes

    def _start(self, trainer, folder: str, kwh_file: str, name: str):
        if not trainer.is_global_zero:
            return None
        return _Tracker(self.log_dir / folder, kwh_file, name, self.country_iso_code)

    def state_dict(self) -> dict:
        running = self._train.energy_so_far() if self._train is not None else 0.0
        return {"training_kwh": self._training_kwh_before + running}

    def load_state_dict(self, state_dict: dict) -> None:
        self._training_kwh_before = float(state_dict.get("training_kwh", 0.0))

    @staticmethod
    def _finish(trainer, tracker, metric: str, earlier_kwh: float = 0.0) -> None:
        if tracker is None:
            return
        kwh = tracker.stop(earlier_kwh)
        if kwh is not None and trainer.logger is not None:
            trainer.logger.log_metrics({metric: kwh}, step=trainer.global_step)

    def on_train_start(self, trainer, pl_module):
        self._train = self._start(trainer, "training_codecarbon", "training_tot_kwh.txt", "SED TRAINING")

    def on_train_end(self, trainer, pl_module):
        self._finish(trainer, self._train, "train/tot_energy_kWh", self._training_kwh_before)
        self._train = None

    def on_test_start(self, trainer, pl_module):
        if self.evaluation:
            self._test = self._start(trainer, "evaluation_codecarbon", "eval_tot_kwh.txt", "SED EVALUATION")
        else:
            self._test = self._start(trainer, "devtest_codecarbon", "devtest_tot_kwh.txt", "SED DEVTEST")

    def on_test_end(self, trainer, pl_module):
        self._finish(trainer, self._test, "eval/tot_energy_kWh" if self.evaluation else "test/tot_energy_kWh")
        self._test = None


class EnvironmentRecord(pl.Callback):
    """Writes `<log_dir>/environment.json` (threads, processes, library versions, git commit) on global rank 0.

    Written at setup, after the DDP processes started and set their thread counts, once per stage
    (fit, then test) so a test-only run records its own environment.
    """

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.is_global_zero:
            write_environment(self.log_dir / "environment.json", world_size=trainer.world_size,
                              accelerator=type(trainer.accelerator).__name__)
