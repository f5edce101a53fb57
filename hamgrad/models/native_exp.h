/* exp(x) for x <= 0, in a form the compiler vectorises without a call (see *_native.c).
 *
 * float32: exp(x) = 2^n exp(r) with n = round(x / ln 2) and r = x - n ln 2 (ln 2 in two parts, so
 * r is exact), exp(r) by a degree-6 polynomial on |r| <= ln 2 / 2 with the coefficients of the
 * Cephes library's expf (relative error about 1 ulp; measured 1.2 ulp, tested against float64).
 * n is clamped at -126 so that 2^n stays a normal number: below x = -87.3 the result is about
 * 1e-38 instead of smaller, below any term it is added to. float64 keeps the C library's exp. */
#ifndef HAMGRAD_NATIVE_EXP_H
#define HAMGRAD_NATIVE_EXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) float hg_exp_f32(float x)
{
    const float n = __builtin_roundf(x * 1.44269504088896341f);
    /* fused multiply-adds keep the two parts of ln 2 apart (-ffast-math could merge them) */
    const float r = __builtin_fmaf(n, 2.12194440e-4f, __builtin_fmaf(n, -0.693359375f, x));
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* the exponent is clamped as an integer, so a NaN x still gives a NaN (through p); a float
     * clamp of x may be compiled to a max that drops NaNs under -ffast-math */
    int32_t e = (int32_t)n;
    e = e < -126 ? -126 : e;
    const int32_t bits = (e + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline __attribute__((always_inline)) double hg_exp_f64(double x) { return exp(x); }

#endif
