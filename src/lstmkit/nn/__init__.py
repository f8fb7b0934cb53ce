"""Modules: LSTM/GRU/RNN layers and cells (drop-ins for torch.nn) and gate recording."""

from lstmkit.nn.cells import GRUCell, LSTMCell, RNNCell
from lstmkit.nn.record import GateRecord, record_gates
from lstmkit.nn.rnn import GRU, LSTM, RNN, RNNBase

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "RNNBase",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "GateRecord",
    "record_gates",
]
