"""Independent references the tests check rnnlab against. ``numpy_rnn``: forward passes and BPTT in NumPy,
the oracle for gradient checks. Nothing here imports torch.
"""
