"""Tiny SED checkpoints (random CRNNs, teacher != student) in our and the official layout, and audio writers."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from desed_task.training.sed import SEDTask
from desed_task.utils.config import load_config

REPO = Path(__file__).resolve().parents[2]
DEMO_CONF = REPO / "confs/dcase2022_task4_baseline/demo.yaml"
DEFAULT_CONF = REPO / "confs/dcase2022_task4_baseline/default.yaml"
TINY_NET = ["net.nb_filters=[4,8,8,8,8,8,8]", "net.n_RNN_cell=8"]


def tiny_task(conf=DEMO_CONF, overrides=(), seed=0, task_cls=SEDTask) -> SEDTask:
    """A random narrow CRNN task; the teacher is perturbed so that student and teacher differ."""
    torch.manual_seed(seed)
    task = task_cls(load_config(conf, [*TINY_NET, *overrides]))
    with torch.no_grad():
        for param in task.sed_teacher.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return task.eval()


def save_checkpoint(task: SEDTask, path: Path, official: bool = False) -> Path:
    """Our layout (state_dict + hyper_parameters), or the official baseline's: plus `mel_spec.*` buffers and
    the extra hyper-parameter `log_dir`."""
    state = {k: v for k, v in task.state_dict().items() if k.startswith(("sed_student.", "sed_teacher."))}
    hparams = dict(task.hparams)
    if official:
        n_fft = task.config["feats"]["n_filters"]
        state["mel_spec.spectrogram.window"] = torch.hamming_window(task.config["feats"]["n_window"], periodic=False)
        state["mel_spec.mel_scale.fb"] = torch.zeros(n_fft // 2 + 1, task.config["feats"]["n_mels"])
        hparams["log_dir"] = "./exp/2022_baseline"
    torch.save({"state_dict": state, "hyper_parameters": hparams, "epoch": 3}, path)
    return path


@pytest.fixture(scope="session")
def demo_task() -> SEDTask:
    return tiny_task()


@pytest.fixture(scope="session")
def demo_checkpoint(demo_task, tmp_path_factory) -> Path:
    return save_checkpoint(demo_task, tmp_path_factory.mktemp("ckpt") / "demo.ckpt")


@pytest.fixture(scope="session")
def default_task() -> SEDTask:
    """Default (full) features: 128 mels, hop 256, 156 frames of 64 ms per 10 s."""
    return tiny_task(DEFAULT_CONF)


def write_audio(path: Path, audio: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sample_rate, subtype=subtype)
    return path


def noise(seconds: float, sample_rate: int = 16000, channels: int = 1, seed: int = 0) -> np.ndarray:
    audio = 0.1 * np.random.default_rng(seed).standard_normal((int(round(seconds * sample_rate)), channels))
    return audio.astype(np.float32).squeeze(1) if channels == 1 else audio.astype(np.float32)


@pytest.fixture(scope="session")
def make_task():
    return tiny_task


@pytest.fixture(scope="session")
def make_checkpoint():
    return save_checkpoint


@pytest.fixture(scope="session")
def make_audio():
    """make_audio(path, seconds | array, sample_rate=16000, channels=1, seed=0) -> path (float WAV/FLAC)."""
    def make(path, content, sample_rate=16000, channels=1, seed=0, subtype="FLOAT"):
        audio = noise(content, sample_rate, channels, seed) if np.isscalar(content) else content
        return write_audio(Path(path), audio, sample_rate, subtype)
    return make


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread (a 2-thread GRU step spins for long on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
