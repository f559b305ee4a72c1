"""bptt.torch.RNN: torch.nn.RNN with each layer's recurrence computed by bptt's core."""

import itertools
from typing import Any, cast, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from bptt.errors import shown
from bptt.torch.recurrent_layer import recurrent_layer
from bptt.torch.tensors import as_compute_input, check_float_cpu, products_dtype

__all__ = ["RNN"]

ACTIVATIONS = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}
COMPUTE_DTYPES = ("bfloat16", "float32", "float64")


class RNN(torch.nn.RNN):
    """A drop-in torch.nn.RNN: the same constructor, parameter names, shapes and initialization
    (it is a subclass, so `load_state_dict` from an nn.RNN works both ways), the same call
    `forward(input, hx=None) -> (output, h_n)` with batched, unbatched or PackedSequence input,
    and the same outputs and gradients; each (layer, direction) is one autograd operation on
    bptt's core. float32 or float64 CPU tensors only.

    compute_dtype (a keyword of the constructor, also an attribute): None, or "bfloat16" for
    products of bfloat16 operands accumulated in float32 (float32 weights; see
    bptt.loss_and_grad), which None also means inside torch.autocast("cpu",
    dtype=torch.bfloat16). Then bfloat16 inputs and hx (an autocast operation's outputs) are
    taken as float32; outputs, h_n and gradients are float32 tensors of bfloat16 values.

    batch_first inputs are transposed to time-major with one copy, as the core reads (T, B, D).
    """

    def __init__(self, *args: Any, compute_dtype: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Each call checks it against the weights' dtype then; a value no dtype takes is refused
        # here already.
        if compute_dtype is not None and (
            not isinstance(compute_dtype, str) or compute_dtype not in COMPUTE_DTYPES
        ):
            raise ValueError(
                "compute_dtype: expected None, 'bfloat16' (with float32 weights) or the weights' "
                f"dtype ('float32' or 'float64'), got {shown(compute_dtype)}"
            )
        self.compute_dtype = None if compute_dtype is None else str(compute_dtype)

    def extra_repr(self) -> str:
        extra = f", compute_dtype={self.compute_dtype!r}" if self.compute_dtype is not None else ""
        return super().extra_repr() + extra

    @overload
    def forward(
        self, input: torch.Tensor, hx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    @overload
    def forward(
        self, input: PackedSequence, hx: torch.Tensor | None = None
    ) -> tuple[PackedSequence, torch.Tensor]: ...

    def forward(
        self, input: torch.Tensor | PackedSequence, hx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | PackedSequence, torch.Tensor]:
        self._check_weights()
        compute_dtype = products_dtype(self.compute_dtype, self._weights_dtype())
        hx = as_compute_input(hx, compute_dtype)
        if isinstance(input, PackedSequence):
            data = as_compute_input(input.data, compute_dtype)
            return self._forward_packed(input._replace(data=data), hx, compute_dtype)
        input = as_compute_input(input, compute_dtype)
        check_float_cpu(input, "input")
        if input.dim() not in (2, 3):
            raise ValueError(
                f"RNN: Expected input to be 2D or 3D, got {input.dim()}D tensor instead"
            )
        batched, shape = input.dim() == 3, input.shape
        batch_dim = 0 if self.batch_first else 1
        if not batched:
            input = input.unsqueeze(batch_dim)
            if hx is not None:
                if hx.dim() != 2:
                    raise RuntimeError(
                        f"For unbatched 2-D input, hx should also be 2-D but got {hx.dim()}-D "
                        "tensor"
                    )
                hx = hx.unsqueeze(1)
        elif hx is not None and hx.dim() != 3:
            raise RuntimeError(
                f"For batched 3-D input, hx should also be 3-D but got {hx.dim()}-D tensor"
            )
        self._check_state(input, hx, batch_sizes=None)
        time_dim = 1 if self.batch_first else 0
        if input.size(time_dim) == 0:
            # nn.RNN's kernel raises RuntimeError for it, after the checks above.
            layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            raise RuntimeError(
                "input: expected at least one time step, T > 0 in shape "
                f"{layout if batched else '(T, input_size)'}, got {tuple(shape)}"
            )
        time_major = input.transpose(0, 1).contiguous() if self.batch_first else input
        output, h_n = self._run_layers(time_major, hx, None, compute_dtype)
        if self.batch_first:
            output = output.transpose(0, 1)
        if not batched:
            return output.squeeze(batch_dim), h_n.squeeze(1)
        return output, h_n

    def _forward_packed(
        self, packed: PackedSequence, hx: torch.Tensor | None, compute_dtype: str | None
    ) -> tuple[PackedSequence, torch.Tensor]:
        """Padded and per-sequence lengths for the core, in the caller's batch order (that of hx
        and h_n); the output is packed again like the input, as nn.RNN returns it."""
        if len(packed.batch_sizes) == 0:
            # Only a hand-built PackedSequence has no time step (pack_sequence refuses one);
            # IndexError is what nn.RNN raises, reading its first batch size.
            raise IndexError(
                "input: expected a PackedSequence of at least one time step, got an empty "
                "batch_sizes"
            )
        check_float_cpu(packed.data, "input.data")
        _check_batch_sizes(packed)
        if hx is not None:
            # Before the permutation below, which would pick a batch of the right size from a
            # wrong hx, or leave its wrong size for the core to report as h0.
            self.check_hidden_size(
                hx,
                self.get_expected_hidden_size(packed.data, packed.batch_sizes),
                "hx: expected shape (num_layers * num_directions, B, hidden_size) = {}, got {}",
            )
            self._check_state(
                packed.data,
                self.permute_hidden(hx, packed.sorted_indices),
                batch_sizes=packed.batch_sizes,
            )
        else:
            self.check_input(packed.data, packed.batch_sizes)
        padded, lengths = pad_packed_sequence(packed)
        output, h_n = self._run_layers(
            padded, hx, lengths.numpy(), compute_dtype, packed.sorted_indices
        )
        if packed.sorted_indices is not None:
            output = output.index_select(1, packed.sorted_indices)
            lengths = lengths.index_select(0, packed.sorted_indices)
        # no sequence (a hand-built batch_sizes of zeros): nothing to pack, which torch refuses
        data = (
            pack_padded_sequence(output, lengths, enforce_sorted=True).data
            if len(lengths)
            else output.flatten(0, 1)
        )
        return (
            PackedSequence(
                data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
            ),
            h_n,
        )

    def _run_layers(
        self,
        inputs: torch.Tensor,
        hx: torch.Tensor | None,
        lengths: np.ndarray | None,
        compute_dtype: str | None,
        sorted_indices: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The stack over time-major inputs (T, B, D): output (T, B, directions·H) and h_n
        (layers·directions, B, H), layer-major as nn.RNN orders it. For packed inputs: the
        sequences' lengths, and the order of the packing (sorted_indices, None if sorted)."""
        directions = 2 if self.bidirectional else 1
        activation = ACTIVATIONS[self.mode]
        layer_input, last_states = inputs, []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                suffix = f"_l{layer}{'_reverse' if direction else ''}"
                weight_ih = getattr(self, f"weight_ih{suffix}")
                # The two biases are one in the maths; autograd gives both their gradient.
                bias = (
                    getattr(self, f"bias_ih{suffix}") + getattr(self, f"bias_hh{suffix}")
                    if self.bias
                    else weight_ih.new_zeros(self.hidden_size)
                )
                hidden, h_last = recurrent_layer(
                    layer_input,
                    None if hx is None else hx[layer * directions + direction],
                    weight_ih,
                    getattr(self, f"weight_hh{suffix}"),
                    bias,
                    activation=activation,
                    lengths=lengths,
                    reverse=bool(direction),
                    compute_dtype=compute_dtype,
                )
                outputs.append(hidden)
                last_states.append(h_last)
            layer_output = outputs[0] if directions == 1 else torch.cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_output = _dropout(layer_output, self.dropout, lengths, sorted_indices)
            layer_input = layer_output
        return layer_input, torch.stack(last_states)

    def _weights_dtype(self) -> torch.dtype:
        # by attribute, as the layers read them (torch.func.functional_call may swap them)
        return cast(torch.Tensor, self.weight_ih_l0).dtype

    def _check_weights(self) -> None:
        dtype = self._weights_dtype()
        for name in self._flat_weights_names:
            weight = getattr(self, name)
            check_float_cpu(weight, name, dtype)
            # A weight replaced by one of another shape: RuntimeError, as nn.RNN's products
            # raise, but naming the weight rather than the input the core would blame.
            expected = self._weight_shape(name)
            if tuple(weight.shape) != expected:
                raise RuntimeError(f"{name}: expected shape {expected}, got {tuple(weight.shape)}")

    def _weight_shape(self, name: str) -> tuple[int, ...]:
        """The shape of the parameter `name` (weight_ih_l1_reverse, bias_hh_l0, ...)."""
        layer = int(name.split("_l")[1].split("_")[0])
        H = self.hidden_size
        if name.startswith("weight_ih"):
            return (H, self.input_size if layer == 0 else H * (2 if self.bidirectional else 1))
        return (H, H) if name.startswith("weight_hh") else (H,)

    def _check_state(
        self, input: torch.Tensor, hx: torch.Tensor | None, batch_sizes: torch.Tensor | None
    ) -> None:
        """nn.RNN's own checks of input and hx (shapes, input dtype), then hx's device and dtype."""
        if hx is None:
            self.check_input(input, batch_sizes)
            return
        self.check_forward_args(input, hx, batch_sizes)
        check_float_cpu(hx, "hx", self._weights_dtype())


def _dropout(
    output: torch.Tensor,
    p: float,
    lengths: np.ndarray | None,
    sorted_indices: torch.Tensor | None,
) -> torch.Tensor:
    """Dropout between layers, drawn as nn.RNN draws it: over the output (T, B, F) in memory
    order, or, for packed inputs, over the packed data in the packing's order (one row per step
    of each sequence, the sequences sorted as the input's sorted_indices sort them)."""
    if lengths is None:
        return F.dropout(output, p, training=True)
    sequence_lengths = torch.from_numpy(lengths)
    if sorted_indices is not None:  # packed from sequences not already sorted by length
        output = output.index_select(1, sorted_indices)
        sequence_lengths = sequence_lengths[sorted_indices]
    packed = pack_padded_sequence(output, sequence_lengths, enforce_sorted=True)
    dropped = PackedSequence(
        F.dropout(packed.data, p, training=True),
        packed.batch_sizes,
        sorted_indices,
        None if sorted_indices is None else torch.argsort(sorted_indices),
    )
    return pad_packed_sequence(dropped, total_length=output.shape[0])[0]


def _check_batch_sizes(packed: PackedSequence) -> None:
    """A hand-built PackedSequence's batch_sizes as packing makes them: int64, non-increasing,
    none negative, summing to data's rows. torch's pad_packed_sequence, which reads them next,
    frees an invalid pointer (the process aborts) on a negative one; nn.RNN raises
    RuntimeError on these, and so does this check, naming them."""
    sizes = packed.batch_sizes
    if sizes.dtype == torch.int64 and sizes.dim() == 1:
        values = sizes.tolist()
        if (
            min(values) >= 0
            and all(a >= b for a, b in itertools.pairwise(values))
            and sum(values) == packed.data.shape[0]
        ):
            return
    raise RuntimeError(
        "input: expected a PackedSequence whose batch_sizes (a 1-D int64 tensor) are "
        f"non-increasing and not negative, summing to data's {packed.data.shape[0]} rows, got "
        f"{shown(sizes.tolist())} of dtype {sizes.dtype}"
    )
