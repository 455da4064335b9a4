"""Neural network models."""
from desed_task.nnet.atst import ATSTSED, ATSTFrame
from desed_task.nnet.checkpoint import load_state_dict_by_name
from desed_task.nnet.cnn import CNN, GLU, ContextGating
from desed_task.nnet.crnn import CRNN
from desed_task.nnet.rnn import BidirectionalGRU

__all__ = ["ATSTSED", "ATSTFrame", "CNN", "CRNN", "GLU", "BidirectionalGRU", "ContextGating", "load_state_dict_by_name"]
