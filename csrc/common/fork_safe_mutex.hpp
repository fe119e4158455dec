// A reader-writer mutex that survives fork().
//
// fork() copies a process with only the calling thread. A std::shared_mutex that another thread held
// at that moment stays held in the child forever (the next update there blocks for good), and data
// that a writer was changing is copied half-written. Every ForkSafeSharedMutex is registered; a
// pthread_atfork handler takes all of them exclusively before fork() (waiting for running readers
// and writers to finish, so the child copies consistent data), releases them in the parent, and
// gives the child fresh, unlocked ones (the thread that took them has a new identity there).
//
// Rule that keeps the handler deadlock-free: never construct or destroy a ForkSafeSharedMutex while
// holding another one, and never wait for the Python GIL while holding one (take the lock after
// releasing the GIL, drop it before re-acquiring).
#pragma once

#include <shared_mutex>

namespace recsample {

class ForkSafeSharedMutex {
 public:
  ForkSafeSharedMutex();
  ~ForkSafeSharedMutex();
  ForkSafeSharedMutex(const ForkSafeSharedMutex&) = delete;
  ForkSafeSharedMutex& operator=(const ForkSafeSharedMutex&) = delete;

  void lock() { m_.lock(); }
  void unlock() { m_.unlock(); }
  bool try_lock() { return m_.try_lock(); }
  void lock_shared() { m_.lock_shared(); }
  void unlock_shared() { m_.unlock_shared(); }
  bool try_lock_shared() { return m_.try_lock_shared(); }

 private:
  friend struct ForkRegistry;
  std::shared_mutex m_;
};

}  // namespace recsample
