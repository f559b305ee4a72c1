// Runs the core without the GIL. A daemon thread still in the core when the interpreter shuts
// down must not take the GIL back: CPython then ends the thread with pthread_exit, and its
// unwinding through a destructor (py::gil_scoped_release's, which is noexcept) aborts the whole
// process. Such a thread waits instead, for the process to end; its results have no reader.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <thread>

namespace bptt::bindings {

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

template <class F>
void without_gil(F&& f) {
  PyThreadState* state = PyEval_SaveThread();
  try {
    f();
  } catch (...) {
    PyEval_RestoreThread(state);
    throw;
  }
  if (interpreter_finalizing()) {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  PyEval_RestoreThread(state);
}

}  // namespace bptt::bindings
