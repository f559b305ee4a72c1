// The core's whole public API: include this, link the bptt_core library.
#pragma once

#include "bptt/available_memory.hpp"
#include "bptt/finite.hpp"
#include "bptt/instruction_sets.hpp"
#include "bptt/optimizer_steps.hpp"
#include "bptt/recurrent_layer.hpp"
#include "bptt/rnn_loss.hpp"
#include "bptt/scratch.hpp"
#include "bptt/softmax_head.hpp"
#include "bptt/threads.hpp"
#include "bptt/training_step.hpp"
#include "bptt/types.hpp"
