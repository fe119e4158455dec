// An uninitialised array of trivially copyable values, 64-byte (cache line / AVX-512 vector)
// aligned, backed by transparent huge pages when it is large (Linux, THP in "madvise" mode, the
// common default). The one aligned allocator of the project (tables, scratch, sketches).
//
// Tables of millions of classes are read at random: with 4 KiB pages nearly every draw also misses
// the TLB, and building the table pays one page fault per 4 KiB. With 2 MiB pages both go away.
// The memory is left uninitialised because every user writes all of it before reading.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace recsample {

template <class T>
class LargeArray {
  static_assert(std::is_trivially_copyable<T>::value, "LargeArray holds plain values only");

 public:
  LargeArray() = default;
  explicit LargeArray(size_t n) : n_(n) {
    if (n == 0) return;
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t bytes = n * sizeof(T);
    void* p = nullptr;
    if (bytes >= 2 * kHuge) {
      const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
      if (posix_memalign(&p, kHuge, rounded) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE) && !defined(RECSAMPLE_NO_HUGEPAGES)
      madvise(p, rounded, MADV_HUGEPAGE);  // a hint: failure only costs speed
#endif
    } else {
      p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
      if (p == nullptr) throw std::bad_alloc();
    }
    ptr_.reset(static_cast<T*>(p));
  }

  explicit operator bool() const { return ptr_ != nullptr; }
  T* data() { return ptr_.get(); }
  const T* data() const { return ptr_.get(); }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return ptr_.get()[i]; }
  const T& operator[](size_t i) const { return ptr_.get()[i]; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> ptr_;
  size_t n_ = 0;
};

}  // namespace recsample
