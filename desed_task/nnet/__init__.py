"""Neural network models."""
from desed_task.nnet.checkpoint import load_state_dict_by_name
from desed_task.nnet.cnn import CNN, GLU, ContextGating
from desed_task.nnet.complexity import complexity
from desed_task.nnet.cp_mobile import CPMobile
from desed_task.nnet.crnn import CRNN
from desed_task.nnet.rnn import BidirectionalGRU

__all__ = ["CNN", "CRNN", "GLU", "BidirectionalGRU", "ContextGating", "load_state_dict_by_name",
           "CPMobile", "complexity"]
