"""Feature extraction, normalisation and augmentation."""
from desed_task.features.atst import ATSTFrontend
from desed_task.features.cpjku import CPJKUFrontend
from desed_task.features.mel import MelFrontend, UCLSERFrontend
from desed_task.features.scaler import TorchScaler

__all__ = ["ATSTFrontend", "MelFrontend", "TorchScaler", "CPJKUFrontend", "UCLSERFrontend"]
