/* Exact W2^2 between count-weighted 1-D empirical distributions, by a two-pointer merge
   of the quantile functions.  xs: P x n sorted values, px: P x n (row index of each sorted
   value), cx: nb x n counts (sum n); same for y with m.  out: nb x P. */
#include <stdint.h>
void swd_w2(int nb, int P, int n, int m, const double *xs, const int32_t *px, const int32_t *cx,
            const double *ys, const int32_t *py, const int32_t *cy, double *out) {
    for (int b = 0; b < nb; b++) {
        const int32_t *xc = cx + (long)b * n, *yc = cy + (long)b * m;
        for (int p = 0; p < P; p++) {
            const double *xv = xs + (long)p * n, *yv = ys + (long)p * m;
            const int32_t *xp = px + (long)p * n, *yp = py + (long)p * m;
            int i = 0, j = 0;
            long rx = (long)xc[xp[0]] * m, ry = (long)yc[yp[0]] * n;
            double tot = 0.0;
            for (;;) {
                while (rx == 0) { if (++i >= n) goto done; rx = (long)xc[xp[i]] * m; }
                while (ry == 0) { if (++j >= m) goto done; ry = (long)yc[yp[j]] * n; }
                long s = rx < ry ? rx : ry;
                double d = xv[i] - yv[j];
                tot += (double)s * d * d;
                rx -= s; ry -= s;
            }
        done:
            out[(long)b * P + p] = tot / ((double)n * (double)m);
        }
    }
}

/* Same, for K point sets against one reference, branch-free merge of cumulative counts.
   xs, px: K x P x n; cx: nb x n; ys, py: P x m; cy: nb x m; out: K x nb x P. */
#include <stdlib.h>
void swd_w2_multi(int nb, int P, int K, int n, int m, const double *xs, const int32_t *px,
                  const int32_t *cx, const double *ys, const int32_t *py, const int32_t *cy,
                  double *out) {
    int64_t *CX = malloc(sizeof(int64_t) * (n + 1)), *CY = malloc(sizeof(int64_t) * (m + 1));
    for (int b = 0; b < nb; b++) {
        const int32_t *xc = cx + (long)b * n, *yc = cy + (long)b * m;
        for (int p = 0; p < P; p++) {
            const int32_t *yp = py + (long)p * m;
            const double *yv = ys + (long)p * m;
            int64_t acc = 0;
            for (int j = 0; j < m; j++) { acc += (int64_t)yc[yp[j]] * n; CY[j] = acc; }
            for (int k = 0; k < K; k++) {
                const int32_t *xp = px + ((long)k * P + p) * n;
                const double *xv = xs + ((long)k * P + p) * n;
                acc = 0;
                for (int i = 0; i < n; i++) { acc += (int64_t)xc[xp[i]] * m; CX[i] = acc; }
                int i = 0, j = 0;
                int64_t prev = 0;
                double tot = 0.0;
                while (i < n && j < m) {
                    int64_t a = CX[i], c = CY[j];
                    int64_t t = a < c ? a : c;
                    double d = xv[i] - yv[j];
                    tot += (double)(t - prev) * d * d;
                    prev = t;
                    i += (a <= c);
                    j += (c <= a);
                }
                out[((long)k * nb + b) * P + p] = tot / ((double)n * (double)m);
            }
        }
    }
    free(CX);
    free(CY);
}

/* Same result via expanded resamples: each sorted value written count times (8 stores per
   row, branch-free for counts <= 8), then a plain (or merged-grid) sum of squared gaps.
   nq, qx, qy, qw: the merged quantile grid (only used when n != m). */
static inline int expand(const double *v, const int32_t *perm, const int32_t *c, int n, double *e) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        int ci = c[perm[i]];
        double x = v[i];
        if (ci <= 8) {
            e[k] = x; e[k + 1] = x; e[k + 2] = x; e[k + 3] = x;
            e[k + 4] = x; e[k + 5] = x; e[k + 6] = x; e[k + 7] = x;
        } else {
            for (int t = 0; t < ci; t++) e[k + t] = x;
        }
        k += ci;
    }
    return k;
}
void swd_w2_expand(int nb, int P, int K, int n, int m, const double *xs, const int32_t *px,
                   const int32_t *cx, const double *ys, const int32_t *py, const int32_t *cy,
                   int nq, const int32_t *qx, const int32_t *qy, const double *qw, double *out) {
    double *XE = malloc(sizeof(double) * (n + 16)), *YE = malloc(sizeof(double) * (m + 16));
    for (int b = 0; b < nb; b++) {
        const int32_t *xc = cx + (long)b * n, *yc = cy + (long)b * m;
        for (int p = 0; p < P; p++) {
            expand(ys + (long)p * m, py + (long)p * m, yc, m, YE);
            for (int k = 0; k < K; k++) {
                expand(xs + ((long)k * P + p) * n, px + ((long)k * P + p) * n, xc, n, XE);
                double tot = 0.0;
                if (n == m) {
                    for (int i = 0; i < n; i++) { double d = XE[i] - YE[i]; tot += d * d; }
                    tot /= n;
                } else {
                    for (int q = 0; q < nq; q++) { double d = XE[qx[q]] - YE[qy[q]]; tot += qw[q] * d * d; }
                }
                out[((long)k * nb + b) * P + p] = tot;
            }
        }
    }
    free(XE);
    free(YE);
}
