"""PyTorch eager with activation checkpointing, as a user would write it to fit a memory budget:
the sequence cut into segments of `segment` steps (the last one shorter when they do not divide
T), each segment's nn.RNN, nn.Linear head and summed cross-entropy run under
torch.utils.checkpoint (non-reentrant, the recommended kind), so that the backward pass keeps
each segment's first state and its loss and computes the rest of the segment again.

The model and its weights are torch_eager's. The inputs go in as one leaf tensor per segment
(views of the same memory), so that dL/dx arrives in those pieces, which together are the
returned gradient: one leaf split into segments would gather the pieces into a whole (T, B, D)
gradient at the end, a copy beyond the output that no budget could cover."""

from peers import torch_eager
from peers.torch_eager import set_threads, unavailable, versions  # noqa: F401 (its interface)

NAME = "PyTorch checkpoint"


class Runner(torch_eager.Runner):
    def __init__(self, problem, segment: int):
        super().__init__(problem)
        T, B = problem.shape[:2]
        if not 1 <= segment <= T:
            raise ValueError(f"segment: expected 1 to T = {T} steps, got {segment}")
        from torch.utils.checkpoint import checkpoint

        self.checkpoint = checkpoint
        self.segment = segment
        self.input_pieces = [
            piece.detach().requires_grad_(not problem.tokens)
            for piece in self.inputs.split(segment)
        ]
        self.target_pieces = self.targets.split(segment * B)  # targets are (T·B,), step-major
        self.leaves = [*self.rnn.parameters(), *self.head.parameters(), self.h0]
        self.leaves += self.input_pieces

    def segment_loss(self, h, inputs, targets):
        """The summed cross-entropy of one segment from state h, and its last state."""
        hidden, h_last = self.rnn(inputs, h)
        logits = self.head(hidden)
        loss = self.torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.O), targets, reduction="sum"
        )
        return loss, h_last

    def __call__(self):
        for leaf in self.leaves:
            leaf.grad = None
        h, losses = self.h0, []
        for inputs, targets in zip(self.input_pieces, self.target_pieces, strict=True):
            loss, h = self.checkpoint(self.segment_loss, h, inputs, targets, use_reentrant=False)
            losses.append(loss)
        loss = self.torch.stack(losses).sum()
        loss.backward()
        self.loss = loss

    def result(self):
        loss, grads = super().result()
        if not self.input_pieces[0].requires_grad:
            return loss, grads
        grads["x"] = self.torch.cat([piece.grad for piece in self.input_pieces]).numpy()
        return loss, grads
