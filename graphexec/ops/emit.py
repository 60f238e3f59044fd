"""Building ops by name, for gradient rules and composite helpers.

Gradient rules live beside their op's declaration and often need ops of other families (a Mul's
gradient reshapes; a Reshape's gradient may multiply). Calling those families' Python wrappers would
make op modules import each other; calling ops by name through the registry keeps every family
independent of every other:

    emit("Sum", dz, axis=(0,), keepdims=True)      # -> Tensor (a list for multi-output ops)

Non-tensor inputs become constants (numpy arrays keep their dtype; Python numbers take TF's
defaults). Attrs are keyword arguments, checked against the op's declared schema.
"""
from __future__ import annotations


from graphexec import dtypes
from graphexec.framework import Tensor, apply_op
from graphexec.ops.convert import convert_to_tensor


def emit(op_type: str, *inputs, name: str | None = None, **attrs):
    """Add one `op_type` node; its output Tensor, or the list of outputs of a multi-output op."""
    tensors = [_tensor(x) for x in inputs]
    outputs = apply_op(op_type, tensors, attrs, name or op_type).outputs
    return outputs[0] if len(outputs) == 1 else list(outputs)


def dynamic_shape(x: Tensor) -> Tensor:
    """x's shape as an int32 vector computed by a Shape op (tf.shape)."""
    return emit("Shape", x, out_type=dtypes.int32)



def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else convert_to_tensor(x)
