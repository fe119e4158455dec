#include "common/fork_safe_mutex.hpp"

#include <pthread.h>

#include <mutex>
#include <new>
#include <unordered_set>

namespace recsample {

struct ForkRegistry {
  std::mutex mutex;
  std::unordered_set<ForkSafeSharedMutex*> live;

  static ForkRegistry& get() {
    static ForkRegistry* r = [] {
      auto* reg = new ForkRegistry;  // never destroyed: handlers may run during static destruction
      pthread_atfork(&ForkRegistry::prepare, &ForkRegistry::parent, &ForkRegistry::child);
      return reg;
    }();
    return *r;
  }
  static void prepare() {
    ForkRegistry& r = get();
    r.mutex.lock();
    for (ForkSafeSharedMutex* m : r.live) m->m_.lock();
  }
  static void parent() {
    ForkRegistry& r = get();
    for (ForkSafeSharedMutex* m : r.live) m->m_.unlock();
    r.mutex.unlock();
  }
  static void child() {
    // One thread here, and it took every lock in prepare(): fresh objects instead of unlocking
    // locks recorded as held by a thread id that no longer exists.
    ForkRegistry& r = get();
    for (ForkSafeSharedMutex* m : r.live) new (&m->m_) std::shared_mutex();
    new (&r.mutex) std::mutex();
  }
};

ForkSafeSharedMutex::ForkSafeSharedMutex() {
  ForkRegistry& r = ForkRegistry::get();
  std::lock_guard<std::mutex> g(r.mutex);
  r.live.insert(this);
}

ForkSafeSharedMutex::~ForkSafeSharedMutex() {
  ForkRegistry& r = ForkRegistry::get();
  std::lock_guard<std::mutex> g(r.mutex);
  r.live.erase(this);
}

}  // namespace recsample
