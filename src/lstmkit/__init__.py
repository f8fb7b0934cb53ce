"""lstmkit: readable, fast LSTM/GRU/RNN for PyTorch."""

__version__ = "0.1.0"
