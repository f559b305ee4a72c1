// Where the recurrent layer keeps each time step's state in its buffer of steps + 1 slots of
// (batch, hidden) (bptt/recurrent_layer.hpp), and in which order the recurrence visits the steps.
#pragma once

#include "bptt/types.hpp"

namespace bptt {

// Where each time step's state lives in the (steps + 1)-slot buffer, and in which order the
// recurrence visits the steps.
struct TimeOrder {
  Index steps;
  bool reverse;

  Index time_of(Index k) const { return reverse ? steps - 1 - k : k; }  // the k-th step run
  Index state_slot(Index t) const { return reverse ? t : t + 1; }
  Index previous_slot(Index t) const { return reverse ? t + 1 : t; }
  Index initial_slot() const { return reverse ? steps : 0; }
  Index first_state_slot() const { return reverse ? 0 : 1; }  // of the steps' block of slots
  // The state after the last step run: h_T (h0 when there are no steps).
  Index final_slot() const { return steps == 0 ? initial_slot() : state_slot(time_of(steps - 1)); }
};

}  // namespace bptt
