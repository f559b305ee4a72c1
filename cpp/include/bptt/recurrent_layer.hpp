// The recurrent layer a_t = b + W h_{t-1} + U x_t, h_t = σ(a_t): forward over a whole sequence,
// and backward from any upstream gradient on the hidden states.
//
// Storage: the hidden states of one call live in one contiguous time-major buffer of
// steps + 1 slots of (batch, hidden): h_t of time t in slot t + 1 and h0 in slot 0 (reverse:
// h_t in slot t and h0 in slot steps), so every step reads and writes contiguous rows and every
// whole-sequence product sees one (steps·batch) × hidden matrix.
#pragma once

#include "bptt/state_slots.hpp"
#include "bptt/types.hpp"

namespace bptt {

// states: (steps + 1)·batch·hidden_size slots as above; the initial slot receives h0 (zeros
// when h0 is null), the others the hidden states.
template <class S>
void recurrent_forward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                       const S* h0, Activation activation, S* states);

// Gradients of the layer given dL/dh_t for every step (d_hidden, (steps, batch, hidden); null
// means zero) and dL/dh_T for the carried state (d_h_last, (batch, hidden); null means zero).
// h0 null means the zero initial state; hidden holds the hidden states by time,
// (steps, batch, hidden).
template <class S>
void recurrent_backward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                        Activation activation, const S* h0, const S* hidden, const S* d_hidden,
                        const S* d_h_last, const LayerGradients<S>& grads);

}  // namespace bptt
