// The scalar types this instruction set's kernels are compiled for. float everywhere; double
// unless BPTT_FLOAT64_KERNELS is 0, as for the AVX-512 kernels of a build that has AVX2's too
// (cpp/CMakeLists.txt): float64 is the accuracy path, not the speed path, and there it runs the
// AVX2 kernels (instruction_sets.cpp). That halves the AVX-512 unit's compile (40 s to 23 s on
// Zen 1), a seventh of a package build's CPU time.
#pragma once

#ifndef BPTT_FLOAT64_KERNELS
#define BPTT_FLOAT64_KERNELS 1
#endif

// BPTT_IF_FLOAT64(x): x where the set has double kernels, nothing otherwise.
#if BPTT_FLOAT64_KERNELS
#define BPTT_IF_FLOAT64(x) x
#else
#define BPTT_IF_FLOAT64(x)
#endif

#define BPTT_FOR_EACH_SCALAR(X) X(float) BPTT_IF_FLOAT64(X(double))
