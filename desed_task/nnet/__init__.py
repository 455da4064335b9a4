"""Neural network models."""
from desed_task.nnet.atst import ATSTSED, ATSTFrame
from desed_task.nnet.checkpoint import load_state_dict_by_name
from desed_task.nnet.cnn import CNN, GLU, ContextGating
from desed_task.nnet.complexity import complexity
from desed_task.nnet.cp_mobile import CPMobile
from desed_task.nnet.crnn import CRNN
from desed_task.nnet.rnn import BidirectionalGRU
from desed_task.nnet.ast import AST
from desed_task.nnet.beats import BEATs, BEATsConfig
from desed_task.nnet.panns import PANNsCnn14
from desed_task.nnet.uclser import ProjectionHead, ResNet18Audio, UCLSERCRNN, VGGLike

__all__ = ["ATSTSED", "ATSTFrame", "CNN", "CRNN", "GLU", "BidirectionalGRU", "ContextGating", "load_state_dict_by_name",
           "CPMobile", "complexity", "AST", "BEATs", "BEATsConfig", "PANNsCnn14",
           "ProjectionHead", "ResNet18Audio", "UCLSERCRNN", "VGGLike"]
