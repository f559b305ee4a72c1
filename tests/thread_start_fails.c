// Preloaded into a test's child process: pthread_create fails with EAGAIN, as at a limit on
// threads (RLIMIT_NPROC, the kernel's threads-max), once BPTT_TEST_THREADS_FAIL is set.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

int pthread_create(pthread_t* thread, const pthread_attr_t* attributes,
                   void* (*start)(void*), void* argument) {
  static int (*real)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  if (!real) real = dlsym(RTLD_NEXT, "pthread_create");
  if (getenv("BPTT_TEST_THREADS_FAIL")) return EAGAIN;
  return real(thread, attributes, start, argument);
}
