// The depthwise convolution's kernel gradient in one pass over the input and the cotangent (XLA FFI, CPU).
//
//   dk[i, j, c] = sum over (n, y, x) of x[n, y*s + i - pad, x*s + j - pad, c] * g[n, y, x, c]
//
// (x outside the map counts as 0). XLA:CPU can only express this as k*k separate sums, each re-reading the input and
// the cotangent (docs/profile.md "Round 5"); here every cotangent row is read once and multiplied into all k*k taps
// while the k input rows it meets are in cache. Built on first use by mobilejax/ops/native.py (c++ -O3
// -march=native) and registered as the FFI target "mobilejax_depthwise_kernel_grad".
//
// Deterministic: the batch is split into a fixed number of chunks that depends on the shapes only, each chunk's
// partial sums are computed in a fixed order, and the partials are added in chunk order; the threads of XLA's
// intra-op pool only decide who computes which chunk, never the order of any sum.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kBlock = 16;     // channels per block: one cache line of floats
constexpr int64_t kMaxK = 8;
constexpr int64_t kMaxChunks = 8;  // batch chunks (fixed by the shapes, not by the thread count)

struct Shape {
  int64_t n, h, w, c, ho, wo, k, stride, pad;
};

// 8 floats: one AVX register (GCC/Clang vector extension; loads and stores go through memcpy, so no alignment is
// assumed). A channel block is kHalves of them.
constexpr int64_t kLanes = 8;
constexpr int64_t kHalves = kBlock / kLanes;
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

inline Vec Load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void Store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }

// One kernel row of one output row: acc[j * c + q] += x[col x*s + j - pad, q] * g[col x, q] for every tap j of the
// row and the kBlock channels q from the block's first (xrow, grow and acc point at it). With K known at compile
// time the row's K accumulators stay in registers while the cotangent row streams past.
template <int64_t K>
void RowFullBlock(const float* xrow, const float* grow, const Shape& s, float* acc) {
  Vec a[K][kHalves];
  for (int64_t j = 0; j < K; ++j) {
    for (int64_t h = 0; h < kHalves; ++h) a[j][h] = Load(acc + j * s.c + h * kLanes);
  }
  for (int64_t xo = 0; xo < s.wo; ++xo) {
    Vec gv[kHalves];
    for (int64_t h = 0; h < kHalves; ++h) gv[h] = Load(grow + xo * s.c + h * kLanes);
    const int64_t col0 = xo * s.stride - s.pad;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t col = col0 + j;
      if (col < 0 || col >= s.w) continue;
      for (int64_t h = 0; h < kHalves; ++h) a[j][h] += Load(xrow + col * s.c + h * kLanes) * gv[h];
    }
  }
  for (int64_t j = 0; j < K; ++j) {
    for (int64_t h = 0; h < kHalves; ++h) Store(acc + j * s.c + h * kLanes, a[j][h]);
  }
}

// The same for any kernel size and cb <= kBlock channels (the last block when c is not a multiple of kBlock).
void RowAnyBlock(const float* xrow, const float* grow, const Shape& s, int64_t cb, float* acc) {
  for (int64_t xo = 0; xo < s.wo; ++xo) {
    const float* gv = grow + xo * s.c;
    const int64_t col0 = xo * s.stride - s.pad;
    const int64_t jlo = std::max<int64_t>(0, -col0);
    const int64_t jhi = std::min<int64_t>(s.k, s.w - col0);
    for (int64_t j = jlo; j < jhi; ++j) {
      const float* xv = xrow + (col0 + j) * s.c;
      float* aj = acc + j * s.c;
      for (int64_t q = 0; q < cb; ++q) aj[q] += xv[q] * gv[q];
    }
  }
}

// Images [n0, n1) into partial[t * c + ch] (tap t = i * k + j, channel ch), zeroed first. Output row by output row,
// so the k input rows and the cotangent row in use (all channels) stay in cache while every channel block and tap
// is accumulated; every (tap, channel) sums over (n, y, x) in that order.
void Chunk(const float* x, const float* g, const Shape& s, int64_t n0, int64_t n1, float* partial) {
  std::memset(partial, 0, sizeof(float) * s.k * s.k * s.c);
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t y = 0; y < s.ho; ++y) {
      const float* grow = g + ((n * s.ho + y) * s.wo) * s.c;
      for (int64_t i = 0; i < s.k; ++i) {
        const int64_t r = y * s.stride + i - s.pad;
        if (r < 0 || r >= s.h) continue;
        const float* xrow = x + ((n * s.h + r) * s.w) * s.c;
        float* acc = partial + i * s.k * s.c;
        for (int64_t c0 = 0; c0 < s.c; c0 += kBlock) {
          const int64_t cb = std::min(kBlock, s.c - c0);
          if (cb == kBlock && s.k == 3) {
            RowFullBlock<3>(xrow + c0, grow + c0, s, acc + c0);
          } else if (cb == kBlock && s.k == 5) {
            RowFullBlock<5>(xrow + c0, grow + c0, s, acc + c0);
          } else if (cb == kBlock && s.k == 7) {
            RowFullBlock<7>(xrow + c0, grow + c0, s, acc + c0);
          } else {
            RowAnyBlock(xrow + c0, grow + c0, s, cb, acc + c0);
          }
        }
      }
    }
  }
}

struct Work {
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

ffi::Error KernelGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g, int64_t stride,
                      int64_t pad, ffi::ResultBuffer<ffi::F32> dk) {
  const auto xd = x.dimensions();
  const auto gd = g.dimensions();
  const auto kd = dk->dimensions();
  if (xd.size() != 4 || gd.size() != 4 || kd.size() != 2 || xd[0] != gd[0] || xd[3] != gd[3] || kd[1] != xd[3]) {
    return ffi::Error::InvalidArgument("depthwise kernel grad: expected x (N,H,W,C), g (N,Ho,Wo,C), dk (k*k,C)");
  }
  Shape s{xd[0], xd[1], xd[2], xd[3], gd[1], gd[2], 0, stride, pad};
  while ((s.k + 1) * (s.k + 1) <= kd[0]) ++s.k;
  if (stride < 1 || pad < 0) return ffi::Error::InvalidArgument("depthwise kernel grad: stride >= 1, pad >= 0");
  if (s.k * s.k != kd[0] || s.k > kMaxK) {
    return ffi::Error::InvalidArgument("depthwise kernel grad: dk must be (k*k, C) with k <= 8");
  }
  const int64_t taps = s.k * s.k;
  const int64_t chunks = std::max<int64_t>(1, std::min(kMaxChunks, s.n));
  std::vector<float> partials(static_cast<size_t>(chunks * taps * s.c));
  const float* xp = x.typed_data();
  const float* gp = g.typed_data();
  float* parts = partials.data();
  auto work = std::make_shared<Work>();
  // Takes chunks until none is left; a task that starts after the call has returned finds none and touches nothing.
  auto run = [work, xp, gp, s, chunks, taps, parts]() {
    for (int64_t q; (q = work->next.fetch_add(1)) < chunks;) {
      const int64_t n0 = s.n * q / chunks, n1 = s.n * (q + 1) / chunks;
      Chunk(xp, gp, s, n0, n1, parts + q * taps * s.c);
      work->done.fetch_add(1, std::memory_order_release);
    }
  };
  const int64_t helpers = std::min<int64_t>(chunks - 1, std::max<int64_t>(0, pool.num_threads() - 1));
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([run]() { run(); });
  run();  // the calling thread works too, so the call finishes even if no pool thread is free
  while (work->done.load(std::memory_order_acquire) < chunks) std::this_thread::yield();
  float* out = dk->typed_data();
  std::memcpy(out, parts, sizeof(float) * taps * s.c);
  for (int64_t q = 1; q < chunks; ++q) {
    const float* p = parts + q * taps * s.c;
    for (int64_t e = 0; e < taps * s.c; ++e) out[e] += p[e];
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MobilejaxDepthwiseKernelGrad, KernelGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("stride")
                                  .Attr<int64_t>("pad")
                                  .Ret<ffi::Buffer<ffi::F32>>());
