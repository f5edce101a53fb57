/* The softmax-pair GradNet-M field for small d in one pass (see modular_native.py).
 *
 * K modules of h units; `wt` is W transposed, (d, K h); `r`, `a` (K h) the input scaling and
 * bias, so that u = r (W x) + a. Per row and module:
 *   sp = softmax(u), sm = softmax(-u), v = A_k sp - B_k sm, f = c + v W.
 * sm comes from sp without a second exponential when the spread max(u) - min(u) is below
 * `limit` (then exp(max - u_i) cannot overflow): sm_i = (1 / e_i) / sum_j (1 / e_j), e = exp(u - max).
 * Backward, with g = g_f W^T and rho = <sp, g>, mu = <sm, g>:
 *   dA_k += rho,  dB_k -= mu,  g_u = A sp (g - rho) + B sm (g - mu),
 *   dr += g_u s,  da += g_u,  dWt += x g_u r + g_f v (each (d, K h) row),  g_x = (g_u r) W.
 * Each module's columns are processed for all rows [r0, r1) before the next, so its
 * accumulators stay in cache. `rows` is per-thread scratch of softmax_skinny_rows() h values;
 * `acc` per-thread
 * accumulators of (d + 2) K h + 2 K values (zeroed by the caller): dWt, dr, da, dA, dB.
 */
#include <math.h>
#include <stddef.h>

#include "native_dots.h"
#include "native_exp.h"

#define MAX_DIM HG_MAX_DIM
#define ROWS HG_ROWS /* rows per block of the weight-gradient update */

/* The parameters of the entry points (and of the bodies they dispatch to). */
#define SOFTMAX_FORWARD_PARAMS(T)                                                               \
    const T *restrict x, const T *restrict wt, const T *restrict c, const T *restrict r,       \
        const T *restrict a, const T *restrict A, const T *restrict B, T *restrict f,          \
        T *restrict rows, T limit, ptrdiff_t k, ptrdiff_t h, ptrdiff_t d, ptrdiff_t r0,        \
        ptrdiff_t r1
#define SOFTMAX_BACKWARD_PARAMS(T)                                                              \
    const T *restrict x, const T *restrict wt, const T *restrict r, const T *restrict a,       \
        const T *restrict A, const T *restrict B, const T *restrict gf, T *restrict gx,        \
        T *restrict rows, T *restrict acc, T limit, ptrdiff_t k, ptrdiff_t h, ptrdiff_t d,     \
        ptrdiff_t r0, ptrdiff_t r1

#define DEFINE_SOFTMAX(T, SUFFIX, EXP)                                                          \
    /* one row, one module: s = W x, the exponentials sp = exp(u - max u) and sm (of -u, up to \
     * a constant), v = A softmax(u) - B softmax(-u) = A sp scale[0] - B sm scale[1] */        \
    HG_INLINE void softmax_row_##SUFFIX(const T *restrict xr, const T *restrict wt,               \
                                     const T *restrict r, const T *restrict a, T A, T B,       \
                                     T *restrict s, T *restrict sp, T *restrict sm,            \
                                     T *restrict v, ptrdiff_t hk, ptrdiff_t d, ptrdiff_t c0,   \
                                     ptrdiff_t h, T limit, T *restrict scale)                  \
    {                                                                                          \
        hg_matvec_##SUFFIX(xr, wt + c0, hk, h, d, s);                                             \
        T hi = r[c0] * s[0] + a[c0], lo = hi; /* no infinities: built with -ffast-math */       \
        for (ptrdiff_t i = 0; i < h; ++i) {                                                    \
            const T u = r[c0 + i] * s[i] + a[c0 + i];                                          \
            sp[i] = u;                                                                         \
            hi = u > hi ? u : hi;                                                              \
            lo = u < lo ? u : lo;                                                              \
        }                                                                                      \
        T sum_p = 0, sum_m = 0;                                                                \
        if (hi - lo < limit) {                                                                 \
            for (ptrdiff_t i = 0; i < h; ++i) {                                                \
                const T e = EXP(sp[i] - hi);                                                   \
                sp[i] = e;                                                                     \
                sm[i] = (T)1 / e;                                                              \
                sum_p += e;                                                                    \
                sum_m += sm[i];                                                                \
            }                                                                                  \
        } else {                                                                               \
            for (ptrdiff_t i = 0; i < h; ++i) {                                                \
                const T u = sp[i];                                                             \
                sp[i] = EXP(u - hi);                                                           \
                sm[i] = EXP(lo - u);                                                           \
                sum_p += sp[i];                                                                \
                sum_m += sm[i];                                                                \
            }                                                                                  \
        }                                                                                      \
        const T inv_p = (T)1 / sum_p, inv_m = (T)1 / sum_m;                                    \
        const T Ap = A * inv_p, Bm = B * inv_m;                                                \
        for (ptrdiff_t i = 0; i < h; ++i)                                                      \
            v[i] = Ap * sp[i] - Bm * sm[i];                                                    \
        scale[0] = inv_p;                                                                      \
        scale[1] = inv_m;                                                                      \
    }                                                                                          \
                                                                                               \
    HG_INLINE void forward_body_##SUFFIX(                                                         \
        SOFTMAX_FORWARD_PARAMS(T))                                                             \
    {                                                                                          \
        const ptrdiff_t hk = k * h;                                                            \
        T scale[2]; /* 1 / sum of sp, 1 / sum of sm for the current row */                     \
        T *s = rows, *sp = rows + h, *sm = rows + 2 * h, *v = rows + 3 * h;                    \
        for (ptrdiff_t n = r0; n < r1; ++n)                                                    \
            for (ptrdiff_t j = 0; j < d; ++j)                                                  \
                f[n * d + j] = c[j];                                                           \
        for (ptrdiff_t m = 0; m < k; ++m) {                                                    \
            const ptrdiff_t c0 = m * h;                                                        \
            for (ptrdiff_t n = r0; n < r1; ++n) {                                              \
                softmax_row_##SUFFIX(x + n * d, wt, r, a, A[m], B[m], s, sp, sm, v, hk, d, c0, \
                                     h, limit, scale);                                         \
                hg_dots_##SUFFIX(v, wt + c0, hk, h, d, f + n * d);                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    HG_INLINE void backward_body_##SUFFIX(                                                        \
        SOFTMAX_BACKWARD_PARAMS(T))                                                            \
    {                                                                                          \
        const ptrdiff_t hk = k * h;                                                            \
        T scale[2]; /* 1 / sum of sp, 1 / sum of sm for the current row */                     \
        T *s = rows, *sp = rows + h, *sm = rows + 2 * h, *g = rows + 3 * h, *v = rows + 4 * h; \
        T *gu = rows + (4 + ROWS) * h; /* v and gu hold ROWS rows each */                      \
        T *dwt = acc, *dr = acc + d * hk, *da = dr + hk, *dA = da + hk, *dB = dA + k;          \
        if (gx)                                                                                \
            for (ptrdiff_t n = r0; n < r1; ++n)                                                \
                for (ptrdiff_t j = 0; j < d; ++j)                                              \
                    gx[n * d + j] = 0;                                                         \
        for (ptrdiff_t m = 0; m < k; ++m) {                                                    \
            const ptrdiff_t c0 = m * h;                                                        \
            const T Am = A[m], Bm = B[m];                                                      \
            const T *restrict rm = r + c0;                                                     \
            T *restrict drm = dr + c0, *restrict dam = da + c0;                                \
            for (ptrdiff_t n0 = r0; n0 < r1; n0 += ROWS) {                                     \
                T xs[ROWS][MAX_DIM], gs[ROWS][MAX_DIM]; /* zero for rows past r1 */           \
                for (int q = 0; q < ROWS; ++q) {                                               \
                    const ptrdiff_t n = n0 + q;                                                \
                    T *restrict vq = v + q * h, *restrict guq = gu + q * h;                    \
                    for (ptrdiff_t j = 0; j < d; ++j) {                                        \
                        xs[q][j] = n < r1 ? x[n * d + j] : 0;                                  \
                        gs[q][j] = n < r1 ? gf[n * d + j] : 0;                                 \
                    }                                                                          \
                    if (n >= r1) {                                                             \
                        for (ptrdiff_t i = 0; i < h; ++i)                                      \
                            vq[i] = guq[i] = 0;                                                \
                        continue;                                                              \
                    }                                                                          \
                    const T *restrict xr = x + n * d, *restrict gfr = gf + n * d;              \
                    softmax_row_##SUFFIX(xr, wt, r, a, Am, Bm, s, sp, sm, vq, hk, d, c0, h,    \
                                         limit, scale);                                        \
                    hg_matvec_##SUFFIX(gfr, wt + c0, hk, h, d, g);                                \
                    const T rho = scale[0] * hg_dot_##SUFFIX(sp, g, h);                        \
                    const T mu = scale[1] * hg_dot_##SUFFIX(sm, g, h);                         \
                    const T Ap = Am * scale[0], Bq = Bm * scale[1];                            \
                    dA[m] += rho;                                                              \
                    dB[m] -= mu;                                                               \
                    for (ptrdiff_t i = 0; i < h; ++i) {                                        \
                        const T gi = Ap * sp[i] * (g[i] - rho) + Bq * sm[i] * (g[i] - mu);     \
                        drm[i] += gi * s[i];                                                   \
                        dam[i] += gi;                                                          \
                        guq[i] = gi * rm[i];                                                   \
                    }                                                                          \
                    if (gx)                                                                    \
                        hg_dots_##SUFFIX(guq, wt + c0, hk, h, d, gx + n * d);                   \
                }                                                                              \
                /* dWt += sum over the ROWS rows of x gu + g_f v: one update per block */      \
                for (ptrdiff_t j = 0; j < d; ++j) {                                            \
                    T *restrict dj = dwt + j * hk + c0;                                        \
                    for (ptrdiff_t i = 0; i < h; ++i) {                                        \
                        T add = 0;                                                             \
                        for (int q = 0; q < ROWS; ++q)                                         \
                            add += gu[q * h + i] * xs[q][j] + v[q * h + i] * gs[q][j];         \
                        dj[i] += add;                                                          \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_SOFTMAX(float, f32, hg_exp_f32)
DEFINE_SOFTMAX(double, f64, hg_exp_f64)

/* Row-vectorised variant for narrow modules (h <= HG_NARROW_H, e.g. the 2-D benchmarks' h = 7):
 * the loops over a module's few units are too short to fill a vector, so these loops run over
 * blocks of HG_BLOCK rows instead. Both softmaxes take their own exponential (no reciprocal
 * trick, so no `limit` test per row). Scratch: the forward keeps (sp, sm, v) of a module for the
 * block, 3 h HG_BLOCK values; the backward (s, sp, sm, v, g), 5 h HG_BLOCK values (arrays of h
 * rows HG_BLOCK apart). */
#define DEFINE_NARROW(T, SUFFIX, EXP)                                                              \
    /* One module (columns c0 .. c0 + h) over the rows q < m of a block: s = W x (into s when  \
     * not NULL), the normalised softmax(u) into sp and softmax(-u) into sm, and               \
     * v = A sp - B sm into v (arrays of h rows, HG_BLOCK apart). */                           \
    HG_INLINE void narrow_module_##SUFFIX(T (*restrict xs)[HG_BLOCK], const T *restrict wt,    \
                                          const T *restrict r, const T *restrict a, T A, T B,  \
                                          T *restrict s, T *restrict sp, T *restrict sm,       \
                                          T *restrict v, ptrdiff_t hk, ptrdiff_t c0,           \
                                          ptrdiff_t h, ptrdiff_t d, ptrdiff_t m)               \
    {                                                                                          \
        T hi[HG_BLOCK], lo[HG_BLOCK], sum_p[HG_BLOCK], sum_m[HG_BLOCK];                        \
        for (ptrdiff_t i = 0; i < h; ++i) {                                                    \
            T *restrict u = sp + i * HG_BLOCK;                                                 \
            hg_block_dot_##SUFFIX(xs, wt + c0 + i, hk, u, m, d);                               \
            if (s)                                                                             \
                for (ptrdiff_t q = 0; q < m; ++q)                                              \
                    s[i * HG_BLOCK + q] = u[q];                                                \
            const T ri = r[c0 + i], ai = a[c0 + i];                                            \
            for (ptrdiff_t q = 0; q < m; ++q)                                                  \
                u[q] = ri * u[q] + ai;                                                         \
            if (i == 0)                                                                        \
                for (ptrdiff_t q = 0; q < m; ++q)                                              \
                    hi[q] = lo[q] = u[q];                                                      \
            else                                                                               \
                for (ptrdiff_t q = 0; q < m; ++q) {                                            \
                    hi[q] = u[q] > hi[q] ? u[q] : hi[q];                                       \
                    lo[q] = u[q] < lo[q] ? u[q] : lo[q];                                       \
                }                                                                              \
        }                                                                                      \
        for (ptrdiff_t q = 0; q < m; ++q)                                                      \
            sum_p[q] = sum_m[q] = 0;                                                           \
        for (ptrdiff_t i = 0; i < h; ++i) {                                                    \
            T *restrict pi = sp + i * HG_BLOCK, *restrict mi = sm + i * HG_BLOCK;              \
            for (ptrdiff_t q = 0; q < m; ++q) {                                                \
                const T u = pi[q];                                                             \
                pi[q] = EXP(u - hi[q]);                                                        \
                mi[q] = EXP(lo[q] - u);                                                        \
                sum_p[q] += pi[q];                                                             \
                sum_m[q] += mi[q];                                                             \
            }                                                                                  \
        }                                                                                      \
        for (ptrdiff_t q = 0; q < m; ++q) {                                                    \
            sum_p[q] = (T)1 / sum_p[q];                                                        \
            sum_m[q] = (T)1 / sum_m[q];                                                        \
        }                                                                                      \
        for (ptrdiff_t i = 0; i < h; ++i) {                                                    \
            T *restrict pi = sp + i * HG_BLOCK, *restrict mi = sm + i * HG_BLOCK;              \
            T *restrict vi = v + i * HG_BLOCK;                                                 \
            for (ptrdiff_t q = 0; q < m; ++q) {                                                \
                pi[q] *= sum_p[q];                                                             \
                mi[q] *= sum_m[q];                                                             \
                vi[q] = A * pi[q] - B * mi[q];                                                 \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    HG_INLINE void narrow_forward_body_##SUFFIX(SOFTMAX_FORWARD_PARAMS(T))                     \
    {                                                                                          \
        (void)limit;                                                                           \
        const ptrdiff_t hk = k * h;                                                            \
        T xs[MAX_DIM][HG_BLOCK], fs[MAX_DIM][HG_BLOCK];                                        \
        T *sp = rows, *sm = rows + h * HG_BLOCK, *v = rows + 2 * h * HG_BLOCK;                 \
        for (ptrdiff_t n0 = r0; n0 < r1; n0 += HG_BLOCK) {                                     \
            const ptrdiff_t m = r1 - n0 < HG_BLOCK ? r1 - n0 : HG_BLOCK;                       \
            hg_block_load_##SUFFIX(x, xs, n0, m, d);                                           \
            hg_block_fill_##SUFFIX(fs, c, m, d);                                               \
            for (ptrdiff_t mod = 0; mod < k; ++mod) {                                          \
                const ptrdiff_t c0 = mod * h;                                                  \
                narrow_module_##SUFFIX(xs, wt, r, a, A[mod], B[mod], NULL, sp, sm, v, hk, c0, h,\
                                       d, m);                                                  \
                for (ptrdiff_t i = 0; i < h; ++i)                                              \
                    hg_block_axpy_##SUFFIX(fs, wt + c0 + i, hk, v + i * HG_BLOCK, m, d);       \
            }                                                                                  \
            hg_block_store_##SUFFIX(fs, f, n0, m, d);                                          \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    HG_INLINE void narrow_backward_body_##SUFFIX(SOFTMAX_BACKWARD_PARAMS(T))                   \
    {                                                                                          \
        (void)limit;                                                                           \
        const ptrdiff_t hk = k * h;                                                            \
        T xs[MAX_DIM][HG_BLOCK], gfs[MAX_DIM][HG_BLOCK], gxs[MAX_DIM][HG_BLOCK];               \
        T rho[HG_BLOCK], mu[HG_BLOCK];                                                         \
        T *s = rows, *sp = s + h * HG_BLOCK, *sm = sp + h * HG_BLOCK, *v = sm + h * HG_BLOCK;  \
        T *g = v + h * HG_BLOCK;                                                               \
        T *dwt = acc, *dr = acc + d * hk, *da = dr + hk, *dA = da + hk, *dB = dA + k;          \
        for (ptrdiff_t n0 = r0; n0 < r1; n0 += HG_BLOCK) {                                     \
            const ptrdiff_t m = r1 - n0 < HG_BLOCK ? r1 - n0 : HG_BLOCK;                       \
            hg_block_load_##SUFFIX(x, xs, n0, m, d);                                           \
            hg_block_load_##SUFFIX(gf, gfs, n0, m, d);                                         \
            hg_block_fill_##SUFFIX(gxs, NULL, m, d);                                           \
            for (ptrdiff_t mod = 0; mod < k; ++mod) {                                          \
                const ptrdiff_t c0 = mod * h;                                                  \
                const T Am = A[mod], Bm = B[mod];                                              \
                narrow_module_##SUFFIX(xs, wt, r, a, Am, Bm, s, sp, sm, v, hk, c0, h, d, m);   \
                for (ptrdiff_t q = 0; q < m; ++q)                                              \
                    rho[q] = mu[q] = 0;                                                        \
                for (ptrdiff_t i = 0; i < h; ++i) {                                            \
                    T *restrict gi = g + i * HG_BLOCK;                                         \
                    const T *restrict pi = sp + i * HG_BLOCK, *restrict mi = sm + i * HG_BLOCK;\
                    hg_block_dot_##SUFFIX(gfs, wt + c0 + i, hk, gi, m, d);                     \
                    for (ptrdiff_t q = 0; q < m; ++q) {                                        \
                        rho[q] += pi[q] * gi[q];                                               \
                        mu[q] += mi[q] * gi[q];                                                \
                    }                                                                          \
                }                                                                              \
                T sum_rho = 0, sum_mu = 0;                                                     \
                for (ptrdiff_t q = 0; q < m; ++q) {                                            \
                    sum_rho += rho[q];                                                         \
                    sum_mu += mu[q];                                                           \
                }                                                                              \
                dA[mod] += sum_rho;                                                            \
                dB[mod] -= sum_mu;                                                             \
                for (ptrdiff_t i = 0; i < h; ++i) {                                            \
                    T *restrict gi = g + i * HG_BLOCK;                                         \
                    const T *restrict pi = sp + i * HG_BLOCK, *restrict mi = sm + i * HG_BLOCK;\
                    const T *restrict si = s + i * HG_BLOCK, *restrict vi = v + i * HG_BLOCK;  \
                    const T ri = r[c0 + i];                                                    \
                    T sum_r = 0, sum_a = 0;                                                    \
                    for (ptrdiff_t q = 0; q < m; ++q) {                                        \
                        const T gu = Am * pi[q] * (gi[q] - rho[q]) + Bm * mi[q] * (gi[q] - mu[q]);\
                        sum_r += gu * si[q];                                                   \
                        sum_a += gu;                                                           \
                        gi[q] = gu * ri;                                                       \
                    }                                                                          \
                    dr[c0 + i] += sum_r;                                                       \
                    da[c0 + i] += sum_a;                                                       \
                    for (ptrdiff_t j = 0; j < d; ++j) {                                        \
                        T add = 0;                                                             \
                        for (ptrdiff_t q = 0; q < m; ++q)                                      \
                            add += gi[q] * xs[j][q] + vi[q] * gfs[j][q];                       \
                        dwt[j * hk + c0 + i] += add;                                           \
                    }                                                                          \
                    hg_block_axpy_##SUFFIX(gxs, wt + c0 + i, hk, gi, m, d);                    \
                }                                                                              \
            }                                                                                  \
            if (gx)                                                                            \
                hg_block_store_##SUFFIX(gxs, gx, n0, m, d);                                    \
        }                                                                                      \
    }                                                                                          \

DEFINE_NARROW(float, f32, hg_exp_f32)
DEFINE_NARROW(double, f64, hg_exp_f64)

/* The per-row bodies, or the row-vectorised ones for narrow modules. */
#define PICK(NARROW, WIDE) if (h <= HG_NARROW_H) NARROW; else WIDE
#define FWD_ARGS(D) x, wt, c, r, a, A, B, f, rows, limit, k, h, D, r0, r1
#define BWD_ARGS(D) x, wt, r, a, A, B, gf, gx, rows, acc, limit, k, h, D, r0, r1
#define FWD_f32(D) PICK(narrow_forward_body_f32(FWD_ARGS(D)), forward_body_f32(FWD_ARGS(D)))
#define BWD_f32(D) PICK(narrow_backward_body_f32(BWD_ARGS(D)), backward_body_f32(BWD_ARGS(D)))
#define FWD_f64(D) PICK(narrow_forward_body_f64(FWD_ARGS(D)), forward_body_f64(FWD_ARGS(D)))
#define BWD_f64(D) PICK(narrow_backward_body_f64(BWD_ARGS(D)), backward_body_f64(BWD_ARGS(D)))

/* The exported entry points: float32 (the training precision) gets the small-d copies of
 * HG_DISPATCH_D, float64 the generic loops. */
HG_ENTRY(softmax_skinny_forward_f32, SOFTMAX_FORWARD_PARAMS(float), HG_DISPATCH_D, FWD_f32)
HG_ENTRY(softmax_skinny_backward_f32, SOFTMAX_BACKWARD_PARAMS(float), HG_DISPATCH_D, BWD_f32)
HG_ENTRY(softmax_skinny_forward_f64, SOFTMAX_FORWARD_PARAMS(double), HG_NO_DISPATCH, FWD_f64)
HG_ENTRY(softmax_skinny_backward_f64, SOFTMAX_BACKWARD_PARAMS(double), HG_NO_DISPATCH, BWD_f64)

/* Values of row scratch per thread that either pass needs, in units of h. */
ptrdiff_t softmax_skinny_rows(void) { return 4 + 2 * ROWS > 5 * HG_BLOCK ? 4 + 2 * ROWS : 5 * HG_BLOCK; }
