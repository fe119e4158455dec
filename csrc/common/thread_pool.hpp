// One process-wide pool of worker threads shared by every kernel.
//
// Kernels split their work into tasks whose results do not depend on which thread runs them
// (fixed-size output chunks with their own random streams), so the thread count changes speed,
// never results. The pool is safe to call from several threads at once: a caller that finds the
// pool busy (another Python thread, or a nested call) runs its tasks inline, which gives the same
// result. A forked child (DataLoader workers) gets a fresh pool instead of deadlocking on the
// parent's threads, which do not exist in the child.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace recsample {

// Threads kernels may use. 0 restores the default: RECSAMPLE_NUM_THREADS if set and > 0, else
// all hardware threads.
void set_num_threads(int n);
int get_num_threads();

// Calls task(i) for every i in [0, num_tasks), spread over at most get_num_threads() threads
// (the caller included). Exceptions thrown by tasks are caught and the first one is rethrown in
// the caller after every task has stopped. Tasks are handed out dynamically.
void parallel_for(int64_t num_tasks, const std::function<void(int64_t)>& task);

// Runs body(c) for c in [0, num_chunks) on at most num_threads threads (0: get_num_threads()),
// the caller included; one chunk, or one thread, runs inline without touching the pool. The
// caller fixes what a chunk is, so which thread runs it never changes the result. The first
// exception stops the other threads' next chunks and is rethrown here.
template <class Body>
void run_chunks(int64_t num_chunks, int num_threads, Body&& body) {
  if (num_chunks <= 0) return;
  int64_t workers = num_threads > 0 ? num_threads : get_num_threads();
  if (workers > num_chunks) workers = num_chunks;
  if (workers <= 1) {
    for (int64_t c = 0; c < num_chunks; ++c) body(c);
    return;
  }
  // One pool task per worker; each pulls chunks from a shared counter.
  std::atomic<int64_t> next{0};
  parallel_for(workers, [&](int64_t) {
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= num_chunks) return;
      try {
        body(c);
      } catch (...) {
        next.store(num_chunks, std::memory_order_relaxed);  // the other workers stop too
        throw;
      }
    }
  });
}

// Splits [0, n) into fixed chunks of chunk_size items (the last may be shorter) and calls
// body(chunk_index, begin, end) for each, in parallel. Chunk boundaries depend only on n and
// chunk_size, never on the thread count: that is what makes results thread-count invariant.
template <class Body>
void parallel_chunks(int64_t n, int64_t chunk_size, Body&& body) {
  if (n <= 0) return;
  run_chunks((n + chunk_size - 1) / chunk_size, 0, [&](int64_t c) {
    const int64_t begin = c * chunk_size;
    body(c, begin, begin + chunk_size < n ? begin + chunk_size : n);
  });
}

}  // namespace recsample
