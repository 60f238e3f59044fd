"""tf.linalg: TF1's linear-algebra namespace over graphexec.ops.linalg_ops (and matmul)."""
from graphexec import api_gaps
from graphexec.ops.linalg_ops import (adjoint, cholesky, einsum, eye, logdet, matvec, norm, matrix_band_part as band_part,
                                      matrix_determinant as det, matrix_diag as diag, matrix_diag_part as diag_part,
                                      matrix_inverse as inv, matrix_set_diag as set_diag, matrix_solve as solve,
                                      matrix_transpose, matrix_transpose as transpose, self_adjoint_eig as eigh,
                                      self_adjoint_eigvals as eigvalsh, svd, tensordot, trace)
from graphexec.ops.math_ops import matmul

__all__ = ["adjoint", "band_part", "cholesky", "logdet", "matvec", "norm", "det", "diag", "diag_part", "eigh", "eigvalsh", "einsum", "eye", "inv", "matmul",
           "matrix_transpose", "set_diag", "solve", "svd", "tensordot", "trace", "transpose"]

__getattr__ = api_gaps.missing_names("linalg", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
