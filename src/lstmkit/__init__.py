"""lstmkit: readable, fast LSTM/GRU/RNN for PyTorch.

>>> import torch, lstmkit
>>> lstm = lstmkit.LSTM(8, 16, batch_first=True)     # same arguments as torch.nn.LSTM
>>> output, (h_n, c_n) = lstm(torch.randn(2, 5, 8))
>>> output.shape
torch.Size([2, 5, 16])
"""

from lstmkit.backends import available_backends, select_backend
from lstmkit.backends.cpu.prepack import prepack
from lstmkit.nn import (
    GRU,
    LSTM,
    RNN,
    GateRecord,
    GRUCell,
    LSTMCell,
    Recurrent,
    RNNCell,
    define_cell,
    record_gates,
)
from lstmkit.nn.compat import compile  # noqa: A004 - torch.compile with allow_rnn scoped

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "GateRecord",
    "Recurrent",
    "available_backends",
    "compile",
    "define_cell",
    "prepack",
    "record_gates",
    "select_backend",
]
