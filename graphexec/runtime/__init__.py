"""Plan execution: contexts (numpy/CuPy), variable stores and the executor."""
