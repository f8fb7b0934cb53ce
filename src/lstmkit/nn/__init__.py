"""Modules: LSTM/GRU/RNN layers and cells (drop-ins for torch.nn), user cells, gate recording."""

from lstmkit.nn import compat
from lstmkit.nn.cells import GRUCell, LSTMCell, RNNCell
from lstmkit.nn.record import GateRecord, record_gates
from lstmkit.nn.rnn import GRU, LSTM, RNN, RNNBase
from lstmkit.nn.user import Recurrent, define_cell

compat.register_quantization({LSTM: "LSTM", GRU: "GRU", LSTMCell: "LSTMCell",
                              GRUCell: "GRUCell", RNNCell: "RNNCell"})  # fmt: skip

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "RNNBase",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "GateRecord",
    "Recurrent",
    "define_cell",
    "record_gates",
]
