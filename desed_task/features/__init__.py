"""Feature extraction, normalisation and augmentation."""
from desed_task.features.cpjku import CPJKUFrontend
from desed_task.features.mel import MelFrontend
from desed_task.features.scaler import TorchScaler

__all__ = ["MelFrontend", "TorchScaler", "CPJKUFrontend"]
