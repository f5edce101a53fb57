/* Dot products for the compiled kernels, written with GCC/Clang vector extensions so that the
 * sums run on several independent vector accumulators (a single accumulator would wait on the
 * latency of each fused multiply-add). Included by the *_native.c files. */
#ifndef HAMGRAD_NATIVE_DOTS_H
#define HAMGRAD_NATIVE_DOTS_H

#include <stddef.h>
#include <string.h>

#define HG_INLINE static inline __attribute__((always_inline))
#define HG_VEC_BYTES 64
#define HG_MAX_DIM 32 /* largest d of the skinny loops (hamgrad.models.tied.SKINNY_DIM) */
#define HG_ROWS 4     /* rows per block of the weight-gradient updates */

#define HG_DEFINE_DOTS(T, SUFFIX)                                                               \
    typedef T hg_vec_##SUFFIX __attribute__((vector_size(HG_VEC_BYTES)));                      \
    enum { HG_LANES_##SUFFIX = HG_VEC_BYTES / sizeof(T) };                                     \
                                                                                               \
    HG_INLINE hg_vec_##SUFFIX hg_load_##SUFFIX(const T *p)                                     \
    {                                                                                          \
        hg_vec_##SUFFIX v;                                                                     \
        memcpy(&v, p, sizeof v);                                                               \
        return v;                                                                              \
    }                                                                                          \
                                                                                               \
    HG_INLINE T hg_hsum_##SUFFIX(hg_vec_##SUFFIX v)                                            \
    {                                                                                          \
        T total = 0;                                                                           \
        for (int b = 0; b < HG_LANES_##SUFFIX; ++b)                                            \
            total += v[b];                                                                     \
        return total;                                                                          \
    }                                                                                          \
                                                                                               \
    /* out[j] += sum_{i < m} v[i] w[j * stride + i] for j < nd (nd <= HG_MAX_DIM; a constant  \
     * where inlined, so the nd accumulators live in registers) */                             \
    HG_INLINE void hg_dots_##SUFFIX(const T *restrict v, const T *restrict w, ptrdiff_t stride, \
                                    ptrdiff_t m, ptrdiff_t nd, T *restrict out)                \
    {                                                                                          \
        hg_vec_##SUFFIX acc[HG_MAX_DIM];                                                       \
        for (ptrdiff_t j = 0; j < nd; ++j)                                                     \
            acc[j] = (hg_vec_##SUFFIX){0};                                                     \
        ptrdiff_t i = 0;                                                                       \
        for (; i + HG_LANES_##SUFFIX <= m; i += HG_LANES_##SUFFIX) {                           \
            const hg_vec_##SUFFIX vi = hg_load_##SUFFIX(v + i);                                \
            for (ptrdiff_t j = 0; j < nd; ++j)                                                 \
                acc[j] += vi * hg_load_##SUFFIX(w + j * stride + i);                           \
        }                                                                                      \
        for (ptrdiff_t j = 0; j < nd; ++j) {                                                   \
            T total = hg_hsum_##SUFFIX(acc[j]);                                                \
            for (ptrdiff_t t = i; t < m; ++t)                                                  \
                total += v[t] * w[j * stride + t];                                             \
            out[j] += total;                                                                   \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* s[i] = sum_{j < nd} x[j] w[j * stride + i], i < m. Where nd is a compile-time constant   \
     * (see HG_DISPATCH_D) the sum over j is unrolled and kept in a register; otherwise s is    \
     * accumulated in one pass per j. */                                                       \
    HG_INLINE void hg_matvec_##SUFFIX(const T *restrict x, const T *restrict w, ptrdiff_t stride, \
                                      ptrdiff_t m, ptrdiff_t nd, T *restrict s)                \
    {                                                                                          \
        if (__builtin_constant_p(nd)) {                                                        \
            for (ptrdiff_t i = 0; i < m; ++i) {                                                \
                T acc = 0;                                                                     \
                for (ptrdiff_t j = 0; j < nd; ++j)                                             \
                    acc += x[j] * w[j * stride + i];                                           \
                s[i] = acc;                                                                    \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t i = 0; i < m; ++i)                                                      \
            s[i] = 0;                                                                          \
        for (ptrdiff_t j = 0; j < nd; ++j) {                                                   \
            const T xj = x[j];                                                                 \
            const T *restrict wj = w + j * stride;                                             \
            for (ptrdiff_t i = 0; i < m; ++i)                                                  \
                s[i] += xj * wj[i];                                                            \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* sum_{i < m} a[i] b[i] on four accumulators */                                           \
    HG_INLINE T hg_dot_##SUFFIX(const T *restrict a, const T *restrict b, ptrdiff_t m)         \
    {                                                                                          \
        hg_vec_##SUFFIX acc[4] = {{0}, {0}, {0}, {0}};                                         \
        ptrdiff_t i = 0;                                                                       \
        for (; i + 4 * HG_LANES_##SUFFIX <= m; i += 4 * HG_LANES_##SUFFIX)                     \
            for (int q = 0; q < 4; ++q)                                                        \
                acc[q] += hg_load_##SUFFIX(a + i + q * HG_LANES_##SUFFIX) *                    \
                          hg_load_##SUFFIX(b + i + q * HG_LANES_##SUFFIX);                     \
        T total = hg_hsum_##SUFFIX(acc[0] + acc[1] + acc[2] + acc[3]);                         \
        for (; i < m; ++i)                                                                     \
            total += a[i] * b[i];                                                              \
        return total;                                                                          \
    }                                                                                          \


/* Blocks of rows for the row-vectorised loops of narrow layers (see *_native.c): an (N, d)
 * array's rows [n0, n0 + m), m <= HG_BLOCK, held transposed as b[j][q], so that loops over the
 * rows q of a block run over contiguous values. */
#define HG_BLOCK 32     /* rows per block */
#define HG_NARROW_H 16  /* layers or modules of at most this many units take these loops */

#define HG_DEFINE_BLOCKS(T, SUFFIX)                                                             \
    /* b[j][q] = a[(n0 + q) d + j] */                                                          \
    HG_INLINE void hg_block_load_##SUFFIX(const T *restrict a, T (*restrict b)[HG_BLOCK],       \
                                          ptrdiff_t n0, ptrdiff_t m, ptrdiff_t d)               \
    {                                                                                          \
        for (ptrdiff_t q = 0; q < m; ++q)                                                      \
            for (ptrdiff_t j = 0; j < d; ++j)                                                  \
                b[j][q] = a[(n0 + q) * d + j];                                                 \
    }                                                                                          \
                                                                                               \
    /* a[(n0 + q) d + j] = b[j][q] */                                                          \
    HG_INLINE void hg_block_store_##SUFFIX(T (*restrict b)[HG_BLOCK], T *restrict a,            \
                                           ptrdiff_t n0, ptrdiff_t m, ptrdiff_t d)              \
    {                                                                                          \
        for (ptrdiff_t q = 0; q < m; ++q)                                                      \
            for (ptrdiff_t j = 0; j < d; ++j)                                                  \
                a[(n0 + q) * d + j] = b[j][q];                                                 \
    }                                                                                          \
                                                                                               \
    /* b[j][q] = c[j] (0 where c is NULL) */                                                   \
    HG_INLINE void hg_block_fill_##SUFFIX(T (*restrict b)[HG_BLOCK], const T *restrict c,       \
                                          ptrdiff_t m, ptrdiff_t d)                             \
    {                                                                                          \
        for (ptrdiff_t j = 0; j < d; ++j)                                                      \
            for (ptrdiff_t q = 0; q < m; ++q)                                                  \
                b[j][q] = c ? c[j] : (T)0;                                                     \
    }                                                                                          \
                                                                                               \
    /* b[j][q] += w[j stride] v[q]: one unit's contribution v W_i to the block's rows */       \
    HG_INLINE void hg_block_axpy_##SUFFIX(T (*restrict b)[HG_BLOCK], const T *restrict w,       \
                                          ptrdiff_t stride, const T *restrict v, ptrdiff_t m,   \
                                          ptrdiff_t d)                                          \
    {                                                                                          \
        for (ptrdiff_t j = 0; j < d; ++j) {                                                    \
            const T wj = w[j * stride];                                                        \
            for (ptrdiff_t q = 0; q < m; ++q)                                                  \
                b[j][q] += wj * v[q];                                                          \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* out[q] = sum_j w[j stride] b[j][q]: one unit's product W_i x for the block's rows */    \
    HG_INLINE void hg_block_dot_##SUFFIX(T (*restrict b)[HG_BLOCK], const T *restrict w,        \
                                         ptrdiff_t stride, T *restrict out, ptrdiff_t m,        \
                                         ptrdiff_t d)                                           \
    {                                                                                          \
        for (ptrdiff_t q = 0; q < m; ++q)                                                      \
            out[q] = 0;                                                                        \
        for (ptrdiff_t j = 0; j < d; ++j) {                                                    \
            const T wj = w[j * stride];                                                        \
            for (ptrdiff_t q = 0; q < m; ++q)                                                  \
                out[q] += wj * b[j][q];                                                        \
        }                                                                                      \
    }

/* Calls CALL(d) with d a compile-time constant for the common small d, so that the loops over d
 * inlined into CALL are unrolled and their sums kept in registers; CALL(d) as is otherwise.
 * (Each case is a full copy of the kernel: the list is short to keep the build at seconds.) */
#define HG_DISPATCH_D(d, CALL)                                                                  \
    switch (d) {                                                                               \
    case 2: CALL(2); break;                                                                    \
    case 4: CALL(4); break;                                                                    \
    case 8: CALL(8); break;                                                                    \
    default: CALL(d);                                                                          \
    }
/* The generic loops only (float64: its small-d copies would double the build, for the precision
 * off the training hot path). */
#define HG_NO_DISPATCH(d, CALL) CALL(d);

/* An exported entry point `void NAME(PARAMS)` running BODY(d) through DISPATCH (PARAMS names d). */
#define HG_ENTRY(NAME, PARAMS, DISPATCH, BODY)                                                  \
    void NAME(PARAMS) { DISPATCH(d, BODY) }

HG_DEFINE_DOTS(float, f32)
HG_DEFINE_DOTS(double, f64)
HG_DEFINE_BLOCKS(float, f32)
HG_DEFINE_BLOCKS(double, f64)

#endif
