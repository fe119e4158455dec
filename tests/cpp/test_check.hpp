// The C++ tests' one assertion macro and its counters (defined in test_kernels.cpp).
#pragma once

#include <cstdio>

extern int g_passed, g_failed;

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (cond) {                                                         \
      ++g_passed;                                                       \
    } else {                                                            \
      ++g_failed;                                                       \
      std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
    }                                                                   \
  } while (0)
