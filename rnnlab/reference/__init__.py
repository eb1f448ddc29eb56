"""Independent references the tests check rnnlab against. ``numpy_rnn``: forward passes and BPTT in NumPy
(no torch), the oracle for gradient checks. ``synthesis_steps``: the synthesis network with every layer
stepped one point at a time (torch), the oracle of the fast model.
"""
