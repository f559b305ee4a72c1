// Eigen's types for the kernels: row-major matrices and views over caller-owned memory.
//
// Every kernel source is compiled once per instruction set, with that set's -m flags, inside
// the namespace bptt::BPTT_ISA_NAMESPACE, and with Eigen's own namespace renamed per set
// (-DEigen=Eigen_<set>, cpp/CMakeLists.txt): the templates one set instantiates, ours and
// Eigen's, can then never be merged by the linker with another set's copies of them.
#pragma once

#ifndef BPTT_ISA_NAMESPACE
#error "kernel sources are compiled per instruction set, with BPTT_ISA_NAMESPACE defined"
#endif

#include "bptt/types.hpp"

#include <Eigen/Core>

namespace bptt::BPTT_ISA_NAMESPACE {

template <class S>
using RowMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using RowVector = Eigen::Matrix<S, 1, Eigen::Dynamic>;

// Row-major views with an explicit row stride, so that one buffer can hold rows narrower than it.
template <class S>
using MatrixView = Eigen::Map<RowMatrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class S>
using ConstMatrixView = Eigen::Map<const RowMatrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class S>
using RowVectorView = Eigen::Map<RowVector<S>>;
template <class S>
using ConstRowVectorView = Eigen::Map<const RowVector<S>>;

// An id read once from memory the caller may change while the core runs (another thread's
// writes, without the GIL): the value checked against its range is the value used.
inline TokenId read_id(const TokenId* ids, Index i) {
  return *static_cast<const volatile TokenId*>(ids + i);
}
// Whether an id is in [0, size): ids are checked before a call, so one out of range was changed
// during it, and counts as no input, or as no target.
inline bool id_in_range(TokenId id, Index size) { return id >= 0 && id < size; }

template <class S>
MatrixView<S> matrix_view(S* data, Index rows, Index cols, Index row_stride) {
  return MatrixView<S>(data, rows, cols, Eigen::OuterStride<>(row_stride));
}
template <class S>
ConstMatrixView<S> matrix_view(const S* data, Index rows, Index cols, Index row_stride) {
  return ConstMatrixView<S>(data, rows, cols, Eigen::OuterStride<>(row_stride));
}

}  // namespace bptt::BPTT_ISA_NAMESPACE
