"""TF1's Adadelta, FTRL and proximal gradient descent optimizers (update formulas: their Apply* ops in
graphexec.ops.training_ops, as TF's kernels)."""
from __future__ import annotations

from graphexec.train.optimizers import Optimizer, _as_float

__all__ = ["AdadeltaOptimizer", "FtrlOptimizer", "ProximalGradientDescentOptimizer"]


class AdadeltaOptimizer(Optimizer):
    """Adadelta (Zeiler): steps scaled by the ratio of running RMS of updates and of gradients."""

    SLOTS = (("accum", 0.0), ("accum_update", 0.0))

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-8, use_locking=False, name="Adadelta"):
        super().__init__(use_locking, name)
        self._learning_rate = _as_float(learning_rate, "learning_rate")
        self._rho, self._epsilon = _as_float(rho, "rho"), _as_float(epsilon, "epsilon")

    def _apply_dense(self, grad, var):
        return self._update("ApplyAdadelta", var, [self._learning_rate, self._rho, self._epsilon, grad])


class ProximalGradientDescentOptimizer(Optimizer):
    """A gradient step followed by the proximal step of l1 * |w| + l2 / 2 * w ** 2."""

    def __init__(self, learning_rate, l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 use_locking=False, name="ProximalGradientDescent"):
        super().__init__(use_locking, name)
        self._learning_rate = _as_float(learning_rate, "learning_rate")
        self._l1 = _as_float(l1_regularization_strength, "l1_regularization_strength")
        self._l2 = _as_float(l2_regularization_strength, "l2_regularization_strength")

    def _apply_dense(self, grad, var):
        return self._update("ApplyProximalGradientDescent", var, [self._learning_rate, self._l1, self._l2, grad])


class FtrlOptimizer(Optimizer):
    """FTRL-Proximal (McMahan et al.), with TF1's options: learning_rate_power, l1/l2 and l2 shrinkage
    regularization, and `beta` (which adds beta / (2 * learning_rate) to the l2 strength)."""

    def __init__(self, learning_rate, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0, use_locking=False, name="Ftrl",
                 accum_name=None, linear_name=None, l2_shrinkage_regularization_strength=0.0, beta=None):
        super().__init__(use_locking, name)
        if initial_accumulator_value < 0.0:
            raise ValueError(f"initial_accumulator_value {initial_accumulator_value} needs to be positive or zero")
        if learning_rate_power > 0.0:
            raise ValueError(f"learning_rate_power {learning_rate_power} needs to be negative or zero")
        for what, value in (("l1_regularization_strength", l1_regularization_strength),
                            ("l2_regularization_strength", l2_regularization_strength),
                            ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength)):
            if value < 0.0:
                raise ValueError(f"{what} {value} needs to be positive or zero")
        if beta is not None and isinstance(learning_rate, (int, float)):
            l2_regularization_strength += beta / (2.0 * learning_rate)
        elif beta:
            raise NotImplementedError("FtrlOptimizer's beta needs a number learning_rate")
        self._learning_rate = _as_float(learning_rate, "learning_rate")
        self._lr_power = float(learning_rate_power)
        self._l1, self._l2 = float(l1_regularization_strength), float(l2_regularization_strength)
        self._l2_shrinkage = float(l2_shrinkage_regularization_strength)
        self.SLOTS = (("accum", float(initial_accumulator_value)), ("linear", 0.0))

    def _apply_dense(self, grad, var):
        return self._update("ApplyFtrlV2", var,
                            [grad, self._learning_rate, self._l1, self._l2, self._l2_shrinkage, self._lr_power])
