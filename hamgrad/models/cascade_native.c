/* The cascade core of GradNet-C in one pass over memory (see cascade_native.py).
 *
 * Arrays are row-major and contiguous. `s`, `y`, `sg`, `v`, `g`, `g_s` hold (N, h) values; the
 * coefficient arrays (L, h). Each call handles the columns [c0, c1) of every row, so callers may
 * run disjoint column ranges concurrently (the per-column sums never collide).
 *
 * Forward, in the y = 2z form of cascade_kernel.py:
 *   y_1 = b2_1 s + k_1,  y_l = b2_l s + k_l + p4_{l-1} sg_{l-1} + Q_{l-1} y_{l-1},  sg_l = sigmoid(y_l)
 *   v   = 2 P_L sg_L + Q_L y_L / 2 - P_L
 * Backward, from g = dl/dv (overwritten, row by row, with the running gradient):
 *   dP_l += g (2 sg_l - 1),  dQ_l += g y_l / 2,  g <- g (Q_l + p4_l sg_l (1 - sg_l)),
 *   dc_l += g,  dbeta_l += g s,  g_s += beta_l g
 */
#include <math.h>
#include <stddef.h>

#include "native_dots.h"
#include "native_exp.h"

/* sigmoid(y) from e = exp(-|y|) <= 1: no overflow for any y (an infinite exp(-y) turns into NaN
 * under the reciprocal approximations that -ffast-math allows), and accurate in both tails. */
#define DEFINE_SIGMOID(T, SUFFIX, EXP)                                                          \
    HG_INLINE T sigmoid_##SUFFIX(T y)                                                          \
    {                                                                                          \
        const T e = EXP(y < (T)0 ? y : -y);                                                    \
        return (y < (T)0 ? e : (T)1) / ((T)1 + e);                                             \
    }

DEFINE_SIGMOID(float, f32, hg_exp_f32)
DEFINE_SIGMOID(double, f64, hg_exp_f64)

/* The forward pass of one row over m columns: y_l, sg_l (the layers `stride` values apart) and
 * v; the coefficient pointers start at the row's first column, their layers h values apart. */
#define DEFINE_CHAIN(T, SUFFIX)                                                                 \
    HG_INLINE void layer_chain_##SUFFIX(                                                       \
        const T *restrict s, const T *restrict b2, const T *restrict k, const T *restrict p4,  \
        const T *restrict Q, const T *restrict P, T *restrict y, T *restrict sg,               \
        T *restrict v, ptrdiff_t stride, ptrdiff_t layers, ptrdiff_t h, ptrdiff_t m)           \
    {                                                                                          \
        for (ptrdiff_t i = 0; i < m; ++i) {                                                    \
            const T yi = b2[i] * s[i] + k[i];                                                  \
            y[i] = yi;                                                                         \
            sg[i] = sigmoid_##SUFFIX(yi);                                                      \
        }                                                                                      \
        for (ptrdiff_t l = 1; l < layers; ++l) {                                               \
            const T *restrict bl = b2 + l * h, *restrict kl = k + l * h;                       \
            const T *restrict pp = p4 + (l - 1) * h, *restrict qp = Q + (l - 1) * h;           \
            const T *restrict yp = y + (l - 1) * stride, *restrict sp = sg + (l - 1) * stride; \
            T *restrict yl = y + l * stride, *restrict sl = sg + l * stride;                   \
            for (ptrdiff_t i = 0; i < m; ++i) {                                                \
                const T yi = bl[i] * s[i] + kl[i] + pp[i] * sp[i] + qp[i] * yp[i];            \
                yl[i] = yi;                                                                    \
                sl[i] = sigmoid_##SUFFIX(yi);                                                  \
            }                                                                                  \
        }                                                                                      \
        const T *restrict PL = P + (layers - 1) * h, *restrict QL = Q + (layers - 1) * h;      \
        const T *restrict yL = y + (layers - 1) * stride, *restrict sL = sg + (layers - 1) * stride; \
        for (ptrdiff_t i = 0; i < m; ++i)                                                      \
            v[i] = (T)2 * PL[i] * sL[i] + (T)0.5 * QL[i] * yL[i] - PL[i];                      \
    }                                                                                          \
                                                                                               \
    /* Back-propagation through the layers of one row over m columns, from g = dl/dv (replaced \
     * by dl/dz_1); adds beta_l g_l to gs and the per-unit parameter gradients to the four     \
     * accumulators (layers h values apart). */                                               \
    HG_INLINE void layer_backprop_##SUFFIX(                                                    \
        const T *restrict s, const T *restrict beta, const T *restrict p4, const T *restrict Q, \
        const T *restrict y, const T *restrict sg, T *restrict g, T *restrict gs,              \
        T *restrict d_beta, T *restrict d_c, T *restrict d_p, T *restrict d_q, ptrdiff_t stride, \
        ptrdiff_t layers, ptrdiff_t h, ptrdiff_t m)                                            \
    {                                                                                          \
        for (ptrdiff_t l = layers - 1; l >= 0; --l) {                                          \
            const T *restrict yl = y + l * stride, *restrict sl = sg + l * stride;             \
            const T *restrict pl = p4 + l * h, *restrict ql = Q + l * h;                       \
            const T *restrict bl = beta + l * h;                                               \
            T *restrict dbl = d_beta + l * h, *restrict dcl = d_c + l * h;                     \
            T *restrict dpl = d_p + l * h, *restrict dql = d_q + l * h;                        \
            for (ptrdiff_t i = 0; i < m; ++i) {                                                \
                const T gi = g[i], si = sl[i];                                                 \
                dpl[i] += gi * ((T)2 * si - (T)1);                                             \
                dql[i] += (T)0.5 * gi * yl[i];                                                 \
                const T gn = gi * (ql[i] + pl[i] * si * ((T)1 - si));                          \
                g[i] = gn;                                                                     \
                dcl[i] += gn;                                                                  \
                dbl[i] += gn * s[i];                                                           \
                gs[i] += bl[i] * gn;                                                           \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_CHAIN(float, f32)
DEFINE_CHAIN(double, f64)

#define DEFINE_CASCADE(T, SUFFIX)                                                          \
    void cascade_forward_##SUFFIX(const T *restrict s, const T *restrict b2,                  \
                                  const T *restrict k, const T *restrict p4,                  \
                                  const T *restrict Q, const T *restrict P, T *restrict y,    \
                                  T *restrict sg, T *restrict v, ptrdiff_t layers,            \
                                  ptrdiff_t n, ptrdiff_t h, ptrdiff_t c0, ptrdiff_t c1)       \
    {                                                                                          \
        const ptrdiff_t plane = n * h;                                                         \
        for (ptrdiff_t r = 0; r < n; ++r) {                                                    \
            const ptrdiff_t at = r * h + c0;                                                   \
            layer_chain_##SUFFIX(s + at, b2 + c0, k + c0, p4 + c0, Q + c0, P + c0, y + at,     \
                                 sg + at, v + at, plane, layers, h, c1 - c0);                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void cascade_backward_##SUFFIX(const T *restrict s, const T *restrict beta,               \
                                   const T *restrict p4, const T *restrict Q,                 \
                                   const T *restrict y, const T *restrict sg, T *restrict g,  \
                                   T *restrict g_s, T *restrict d_beta, T *restrict d_c,      \
                                   T *restrict d_p, T *restrict d_q, ptrdiff_t layers,        \
                                   ptrdiff_t n, ptrdiff_t h, ptrdiff_t c0, ptrdiff_t c1)      \
    {                                                                                          \
        const ptrdiff_t plane = n * h;                                                         \
        for (ptrdiff_t l = 0; l < layers; ++l)                                                 \
            for (ptrdiff_t i = c0; i < c1; ++i) {                                              \
                d_beta[l * h + i] = 0;                                                         \
                d_c[l * h + i] = 0;                                                            \
                d_p[l * h + i] = 0;                                                            \
                d_q[l * h + i] = 0;                                                            \
            }                                                                                  \
        for (ptrdiff_t r = 0; r < n; ++r) {                                                    \
            const ptrdiff_t row = r * h;                                                       \
            T *restrict gr = g + row;                                                          \
            T *restrict gsr = g_s + row;                                                       \
            const T *restrict sr = s + row;                                                    \
            for (ptrdiff_t i = c0; i < c1; ++i)                                                \
                gsr[i] = 0;                                                                    \
            layer_backprop_##SUFFIX(sr + c0, beta + c0, p4 + c0, Q + c0, y + row + c0,         \
                                    sg + row + c0, gr + c0, gsr + c0, d_beta + c0, d_c + c0,   \
                                    d_p + c0, d_q + c0, plane, layers, h, c1 - c0);            \
        }                                                                                      \
    }

DEFINE_CASCADE(float, f32)
DEFINE_CASCADE(double, f64)

/* Skinny variant (small d): the products with W run inside the loops, so no (N, h) array is ever
 * written. `wt` is W transposed, (d, h). Rows [r0, r1) are handled, in blocks of CHUNK columns so
 * that a block's accumulators and row values stay in L1 cache. `rows` is per-thread scratch of
 * (4 + 2L) CHUNK values, `acc` per-thread accumulators of (4L + d) h values (zeroed by the
 * caller): dbeta, dc, dP, dQ (each (L, h)) and dWt (d, h) = (v^T g_f + g_s^T x)^T.
 *
 * forward: f = c + v W for rows [r0, r1) (f is (N, d)).
 * backward: recomputes the forward of each row, then back-propagates g_v = g_f W^T; writes
 * g_x = g_s W when gx is not NULL.
 */
#define CHUNK 256

/* The parameters of the skinny entry points (and of the bodies they dispatch to). */
#define SKINNY_FORWARD_PARAMS(T)                                                                \
    const T *restrict x, const T *restrict wt, const T *restrict c, const T *restrict b2,      \
        const T *restrict k, const T *restrict p4, const T *restrict Q, const T *restrict P,   \
        T *restrict f, T *restrict rows, ptrdiff_t layers, ptrdiff_t h, ptrdiff_t d,           \
        ptrdiff_t r0, ptrdiff_t r1
#define SKINNY_BACKWARD_PARAMS(T)                                                               \
    const T *restrict x, const T *restrict wt, const T *restrict b2, const T *restrict k,      \
        const T *restrict p4, const T *restrict Q, const T *restrict P,                        \
        const T *restrict beta, const T *restrict gf, T *restrict gx, T *restrict rows,        \
        T *restrict acc, ptrdiff_t layers, ptrdiff_t h, ptrdiff_t d, ptrdiff_t r0, ptrdiff_t r1

#define DEFINE_SKINNY(T, SUFFIX)                                                           \
    /* forward of one row over the columns [c0, c0 + m): s, y_l, sg_l, v into the row buffers */ \
    HG_INLINE void skinny_row_##SUFFIX(const T *restrict xr, const T *restrict wt,                \
                                    const T *restrict b2, const T *restrict k,                 \
                                    const T *restrict p4, const T *restrict Q,                 \
                                    const T *restrict P, T *restrict srow, T *restrict y,      \
                                    T *restrict sg, T *restrict v, ptrdiff_t layers,           \
                                    ptrdiff_t h, ptrdiff_t d, ptrdiff_t c0, ptrdiff_t m)       \
    {                                                                                          \
        hg_matvec_##SUFFIX(xr, wt + c0, h, m, d, srow);                                        \
        layer_chain_##SUFFIX(srow, b2 + c0, k + c0, p4 + c0, Q + c0, P + c0, y, sg, v, CHUNK,  \
                             layers, h, m);                                                    \
    }                                                                                          \
                                                                                               \
    HG_INLINE void skinny_forward_body_##SUFFIX(                                               \
        SKINNY_FORWARD_PARAMS(T))                                                              \
    {                                                                                          \
        T *srow = rows, *v = rows + CHUNK, *y = rows + 4 * CHUNK, *sg = y + layers * CHUNK;    \
        for (ptrdiff_t r = r0; r < r1; ++r)                                                    \
            for (ptrdiff_t j = 0; j < d; ++j)                                                  \
                f[r * d + j] = c[j];                                                           \
        for (ptrdiff_t c0 = 0; c0 < h; c0 += CHUNK) {                                          \
            const ptrdiff_t m = h - c0 < CHUNK ? h - c0 : CHUNK;                               \
            for (ptrdiff_t r = r0; r < r1; ++r) {                                              \
                skinny_row_##SUFFIX(x + r * d, wt, b2, k, p4, Q, P, srow, y, sg, v, layers, h, \
                                    d, c0, m);                                                 \
                hg_dots_##SUFFIX(v, wt + c0, h, m, d, f + r * d);                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    HG_INLINE void skinny_backward_body_##SUFFIX(                                              \
        SKINNY_BACKWARD_PARAMS(T))                                                             \
    {                                                                                          \
        T *srow = rows, *v = rows + CHUNK, *g = rows + 2 * CHUNK, *gs = rows + 3 * CHUNK;      \
        T *y = rows + 4 * CHUNK, *sg = y + layers * CHUNK;                                     \
        if (gx)                                                                                \
            for (ptrdiff_t r = r0; r < r1; ++r)                                                \
                for (ptrdiff_t j = 0; j < d; ++j)                                              \
                    gx[r * d + j] = 0;                                                         \
        for (ptrdiff_t c0 = 0; c0 < h; c0 += CHUNK) {                                          \
            const ptrdiff_t m = h - c0 < CHUNK ? h - c0 : CHUNK;                               \
            for (ptrdiff_t r = r0; r < r1; ++r) {                                              \
                const T *restrict xr = x + r * d, *restrict gfr = gf + r * d;                  \
                skinny_row_##SUFFIX(xr, wt, b2, k, p4, Q, P, srow, y, sg, v, layers, h, d, c0, \
                                    m);                                                        \
                for (ptrdiff_t i = 0; i < m; ++i)                                              \
                    gs[i] = 0;                                                                 \
                hg_matvec_##SUFFIX(gfr, wt + c0, h, m, d, g);                                  \
                layer_backprop_##SUFFIX(srow, beta + c0, p4 + c0, Q + c0, y, sg, g, gs,        \
                                        acc + c0, acc + layers * h + c0,                       \
                                        acc + 2 * layers * h + c0, acc + 3 * layers * h + c0,  \
                                        CHUNK, layers, h, m);                                  \
                T *restrict dwt = acc + 4 * layers * h + c0;                                   \
                for (ptrdiff_t j = 0; j < d; ++j) {                                            \
                    const T xj = xr[j], gj = gfr[j];                                           \
                    T *restrict dj = dwt + j * h;                                              \
                    for (ptrdiff_t i = 0; i < m; ++i)                                          \
                        dj[i] += gs[i] * xj + v[i] * gj;                                       \
                }                                                                              \
                if (gx)                                                                        \
                    hg_dots_##SUFFIX(gs, wt + c0, h, m, d, gx + r * d);                        \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_SKINNY(float, f32)
DEFINE_SKINNY(double, f64)

/* Row-vectorised variant for narrow layers (h <= HG_NARROW_H, e.g. the 2-D benchmarks' h = 7):
 * with so few units the loops over them are too short to fill a vector, so these loops run over
 * blocks of HG_BLOCK rows instead, one unit at a time (the units of a cascade never meet until
 * the product with W). Same arithmetic as the skinny loops above, summed in another order. The
 * backward keeps a unit's L layers for the block in `rows` (2 L HG_BLOCK values). */
#define DEFINE_NARROW(T, SUFFIX)                                                                   \
    /* one unit over the rows q < m of a block: s = W_i x, the layers (y_l, sg_l) and v_i; the \
     * layers go to ys, sgs (HG_BLOCK apart) when they are not NULL */                         \
    HG_INLINE void narrow_unit_##SUFFIX(T (*restrict xs)[HG_BLOCK], const T *restrict wt,      \
                                        const T *restrict b2, const T *restrict k,             \
                                        const T *restrict p4, const T *restrict Q,             \
                                        const T *restrict P, T *restrict s, T *restrict v,     \
                                        T *restrict ys, T *restrict sgs, ptrdiff_t i,          \
                                        ptrdiff_t layers, ptrdiff_t h, ptrdiff_t d, ptrdiff_t m)\
    {                                                                                          \
        T y[HG_BLOCK], sg[HG_BLOCK];                                                           \
        hg_block_dot_##SUFFIX(xs, wt + i, h, s, m, d);                                         \
        for (ptrdiff_t l = 0; l < layers; ++l) {                                               \
            const T bl = b2[l * h + i], kl = k[l * h + i];                                     \
            if (l == 0)                                                                        \
                for (ptrdiff_t q = 0; q < m; ++q)                                              \
                    y[q] = bl * s[q] + kl;                                                     \
            else {                                                                             \
                const T pp = p4[(l - 1) * h + i], qp = Q[(l - 1) * h + i];                     \
                for (ptrdiff_t q = 0; q < m; ++q)                                              \
                    y[q] = bl * s[q] + kl + pp * sg[q] + qp * y[q];                            \
            }                                                                                  \
            for (ptrdiff_t q = 0; q < m; ++q)                                                  \
                sg[q] = sigmoid_##SUFFIX(y[q]);                                                \
            if (ys)                                                                            \
                for (ptrdiff_t q = 0; q < m; ++q) {                                            \
                    ys[l * HG_BLOCK + q] = y[q];                                               \
                    sgs[l * HG_BLOCK + q] = sg[q];                                             \
                }                                                                              \
        }                                                                                      \
        const T PL = P[(layers - 1) * h + i], QL = Q[(layers - 1) * h + i];                    \
        for (ptrdiff_t q = 0; q < m; ++q)                                                      \
            v[q] = (T)2 * PL * sg[q] + (T)0.5 * QL * y[q] - PL;                                \
    }                                                                                          \
                                                                                               \
    HG_INLINE void narrow_forward_body_##SUFFIX(SKINNY_FORWARD_PARAMS(T))                      \
    {                                                                                          \
        (void)rows;                                                                            \
        T xs[HG_MAX_DIM][HG_BLOCK], fs[HG_MAX_DIM][HG_BLOCK], s[HG_BLOCK], v[HG_BLOCK];        \
        for (ptrdiff_t n0 = r0; n0 < r1; n0 += HG_BLOCK) {                                     \
            const ptrdiff_t m = r1 - n0 < HG_BLOCK ? r1 - n0 : HG_BLOCK;                       \
            hg_block_load_##SUFFIX(x, xs, n0, m, d);                                           \
            hg_block_fill_##SUFFIX(fs, c, m, d);                                               \
            for (ptrdiff_t i = 0; i < h; ++i) {                                                \
                narrow_unit_##SUFFIX(xs, wt, b2, k, p4, Q, P, s, v, NULL, NULL, i, layers, h, d, m);\
                hg_block_axpy_##SUFFIX(fs, wt + i, h, v, m, d);                                \
            }                                                                                  \
            hg_block_store_##SUFFIX(fs, f, n0, m, d);                                          \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    HG_INLINE void narrow_backward_body_##SUFFIX(SKINNY_BACKWARD_PARAMS(T))                    \
    {                                                                                          \
        T xs[HG_MAX_DIM][HG_BLOCK], gfs[HG_MAX_DIM][HG_BLOCK], gxs[HG_MAX_DIM][HG_BLOCK];      \
        T s[HG_BLOCK], v[HG_BLOCK], g[HG_BLOCK], gs[HG_BLOCK];                                 \
        T *ys = rows, *sgs = rows + layers * HG_BLOCK;                                         \
        T *d_beta = acc, *d_c = acc + layers * h, *d_p = acc + 2 * layers * h;                 \
        T *d_q = acc + 3 * layers * h, *dwt = acc + 4 * layers * h;                            \
        for (ptrdiff_t n0 = r0; n0 < r1; n0 += HG_BLOCK) {                                     \
            const ptrdiff_t m = r1 - n0 < HG_BLOCK ? r1 - n0 : HG_BLOCK;                       \
            hg_block_load_##SUFFIX(x, xs, n0, m, d);                                           \
            hg_block_load_##SUFFIX(gf, gfs, n0, m, d);                                         \
            hg_block_fill_##SUFFIX(gxs, NULL, m, d);                                           \
            for (ptrdiff_t i = 0; i < h; ++i) {                                                \
                narrow_unit_##SUFFIX(xs, wt, b2, k, p4, Q, P, s, v, ys, sgs, i, layers, h, d, m);\
                hg_block_dot_##SUFFIX(gfs, wt + i, h, g, m, d);                                \
                for (ptrdiff_t q = 0; q < m; ++q)                                              \
                    gs[q] = 0;                                                                 \
                for (ptrdiff_t l = layers - 1; l >= 0; --l) {                                  \
                    const ptrdiff_t at = l * h + i;                                            \
                    const T pl = p4[at], ql = Q[at], bl = beta[at];                            \
                    const T *restrict yl = ys + l * HG_BLOCK, *restrict sl = sgs + l * HG_BLOCK;\
                    T sum_p = 0, sum_q = 0, sum_c = 0, sum_b = 0;                              \
                    for (ptrdiff_t q = 0; q < m; ++q) {                                        \
                        const T gq = g[q], sq = sl[q];                                         \
                        sum_p += gq * ((T)2 * sq - (T)1);                                      \
                        sum_q += (T)0.5 * gq * yl[q];                                          \
                        const T gn = gq * (ql + pl * sq * ((T)1 - sq));                        \
                        g[q] = gn;                                                             \
                        sum_c += gn;                                                           \
                        sum_b += gn * s[q];                                                    \
                        gs[q] += bl * gn;                                                      \
                    }                                                                          \
                    d_p[at] += sum_p;                                                          \
                    d_q[at] += sum_q;                                                          \
                    d_c[at] += sum_c;                                                          \
                    d_beta[at] += sum_b;                                                       \
                }                                                                              \
                for (ptrdiff_t j = 0; j < d; ++j) {                                            \
                    T add = 0;                                                                 \
                    for (ptrdiff_t q = 0; q < m; ++q)                                          \
                        add += gs[q] * xs[j][q] + v[q] * gfs[j][q];                            \
                    dwt[j * h + i] += add;                                                     \
                }                                                                              \
                hg_block_axpy_##SUFFIX(gxs, wt + i, h, gs, m, d);                              \
            }                                                                                  \
            if (gx)                                                                            \
                hg_block_store_##SUFFIX(gxs, gx, n0, m, d);                                    \
        }                                                                                      \
    }                                                                                          \

DEFINE_NARROW(float, f32)
DEFINE_NARROW(double, f64)

/* The skinny bodies, or the row-vectorised ones for narrow layers. */
#define PICK(NARROW, WIDE) if (h <= HG_NARROW_H) NARROW; else WIDE

#define SKINNY_FWD_ARGS(D) x, wt, c, b2, k, p4, Q, P, f, rows, layers, h, D, r0, r1
#define SKINNY_BWD_ARGS(D) x, wt, b2, k, p4, Q, P, beta, gf, gx, rows, acc, layers, h, D, r0, r1
#define SKINNY_FWD_f32(D) PICK(narrow_forward_body_f32(SKINNY_FWD_ARGS(D)), skinny_forward_body_f32(SKINNY_FWD_ARGS(D)))
#define SKINNY_BWD_f32(D) PICK(narrow_backward_body_f32(SKINNY_BWD_ARGS(D)), skinny_backward_body_f32(SKINNY_BWD_ARGS(D)))
#define SKINNY_FWD_f64(D) PICK(narrow_forward_body_f64(SKINNY_FWD_ARGS(D)), skinny_forward_body_f64(SKINNY_FWD_ARGS(D)))
#define SKINNY_BWD_f64(D) PICK(narrow_backward_body_f64(SKINNY_BWD_ARGS(D)), skinny_backward_body_f64(SKINNY_BWD_ARGS(D)))

/* The exported entry points: float32 (the training precision) gets the small-d copies of
 * HG_DISPATCH_D, float64 the generic loops. */
HG_ENTRY(cascade_skinny_forward_f32, SKINNY_FORWARD_PARAMS(float), HG_DISPATCH_D, SKINNY_FWD_f32)
HG_ENTRY(cascade_skinny_backward_f32, SKINNY_BACKWARD_PARAMS(float), HG_DISPATCH_D, SKINNY_BWD_f32)
HG_ENTRY(cascade_skinny_forward_f64, SKINNY_FORWARD_PARAMS(double), HG_NO_DISPATCH, SKINNY_FWD_f64)
HG_ENTRY(cascade_skinny_backward_f64, SKINNY_BACKWARD_PARAMS(double), HG_NO_DISPATCH, SKINNY_BWD_f64)

/* Columns per block of the skinny loops (the row scratch holds (4 + 2L) of these). */
ptrdiff_t cascade_skinny_chunk(void) { return CHUNK; }
