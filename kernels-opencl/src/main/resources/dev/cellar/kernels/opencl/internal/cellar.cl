// Cellar OpenCL kernels. Compiled once per context and element type with -DT=float or -DT=double
// (-DUSE_FP64 for double), and the GEMM tile sizes TSM, TSN, TSK, WPTM, WPTN chosen from the device limits.
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define MAXR 8

// ------------------------------------------------------------------ raw copies (any 4/8-byte type, bit exact)
#define COPY_KERNEL(NAME, E) \
__kernel void NAME(__global const E* src, const int srcOff, const int8 ss, \
                   __global E* dst, const int dstOff, const int8 ds, const int8 dims, const int rank, const int n) { \
    int k = get_global_id(0); \
    if (k >= n) return; \
    int rem = k, is = srcOff, id = dstOff; \
    int d[8] = {dims.s0, dims.s1, dims.s2, dims.s3, dims.s4, dims.s5, dims.s6, dims.s7}; \
    int a[8] = {ss.s0, ss.s1, ss.s2, ss.s3, ss.s4, ss.s5, ss.s6, ss.s7}; \
    int b[8] = {ds.s0, ds.s1, ds.s2, ds.s3, ds.s4, ds.s5, ds.s6, ds.s7}; \
    for (int r = rank - 1; r >= 0; r--) { \
        int i = rem % d[r]; rem /= d[r]; \
        is += i * a[r]; id += i * b[r]; \
    } \
    dst[id] = src[is]; \
}
COPY_KERNEL(copy_u32, uint)
COPY_KERNEL(copy_u64, ulong)

// ------------------------------------------------------------------ conversions
__kernel void fill_zero(__global T* x, const int n) {
    int k = get_global_id(0);
    if (k < n) x[k] = (T) 0;
}

// ------------------------------------------------------------------ elementwise
#define GELU_C ((T) 0.7978845608028654)

inline T sigmoid_t(T x) {
    return x >= (T) 0 ? (T) 1 / ((T) 1 + exp(-x)) : exp(x) / ((T) 1 + exp(x));
}

inline T unary_op(const int op, const T x) {
    switch (op) {
        case 0: return -x;
        case 1: return exp(x);
        case 2: return log(x);
        case 3: return tanh(x);
        case 4: return sigmoid_t(x);
        case 5: return x > (T) 0 ? x : (T) 0;
        // GELU through s = sigmoid(2u) = 0.5 (1 + tanh u) and sech^2 u = 4 s (1 - s), 1 - s = sigmoid(-2u): the
        // tanh form cancels where tanh saturates (1 - t^2 with a t one ulp from 1 gave GELU'(30) = 1.0002 in F32)
        case 6: return x * sigmoid_t((T) 2 * GELU_C * (x + (T) 0.044715 * x * x * x));
        case 7: {
            T u2 = (T) 2 * GELU_C * (x + (T) 0.044715 * x * x * x);
            T s = sigmoid_t(u2);
            return s + (T) 2 * x * s * sigmoid_t(-u2) * GELU_C * ((T) 1 + (T) 3 * (T) 0.044715 * x * x);
        }
        case 8: return sqrt(x);
        case 9: return x > (T) 0 ? (T) 1 : (T) 0;
        default: return fabs(x);
    }
}

__kernel void unary(const int op, __global const T* x, __global T* out, const int n) {
    int k = get_global_id(0);
    if (k < n) out[k] = unary_op(op, x[k]);
}

inline T binary_op(const int op, const T a, const T b) {
    switch (op) {
        case 0: return a + b;
        case 1: return a - b;
        case 2: return a * b;
        case 3: return a / b;
        case 4: return pow(a, b);
        case 5: return isnan(a) || isnan(b) ? a + b : fmax(a, b);
        case 6: return a > b ? (T) 1 : (T) 0;
        default: return a == b ? (T) 1 : (T) 0;
    }
}

/** Contiguous fast path: both operands contiguous with the output shape, or b (or a) a scalar. */
__kernel void binary_flat(const int op, __global const T* a, const int aStep, __global const T* b, const int bStep,
                          __global T* out, const int n) {
    int k = get_global_id(0);
    if (k < n) out[k] = binary_op(op, a[k * aStep], b[k * bStep]);
}

__kernel void binary_strided(const int op, __global const T* a, const int8 sa, __global const T* b, const int8 sb,
                             __global T* out, const int8 dims, const int rank, const int n) {
    int k = get_global_id(0);
    if (k >= n) return;
    int d[8] = {dims.s0, dims.s1, dims.s2, dims.s3, dims.s4, dims.s5, dims.s6, dims.s7};
    int x[8] = {sa.s0, sa.s1, sa.s2, sa.s3, sa.s4, sa.s5, sa.s6, sa.s7};
    int y[8] = {sb.s0, sb.s1, sb.s2, sb.s3, sb.s4, sb.s5, sb.s6, sb.s7};
    int rem = k, ia = 0, ib = 0;
    for (int r = rank - 1; r >= 0; r--) {
        int i = rem % d[r]; rem /= d[r];
        ia += i * x[r]; ib += i * y[r];
    }
    out[k] = binary_op(op, a[ia], b[ib]);
}

// ------------------------------------------------------------------ reductions: one work-item per output, fixed order
__kernel void reduce(const int op, __global const T* x, const int outer, const int len, const int inner, __global T* out) {
    int k = get_global_id(0);
    if (k >= outer * inner) return;
    int o = k / inner, i = k % inner;
    __global const T* p = x + (long) o * len * inner + i;
    T acc = op == 0 ? (T) 0 : (T) -INFINITY;
    for (int l = 0; l < len; l++) {
        T v = p[(long) l * inner];
        acc = op == 0 ? acc + v : (isnan(acc) || isnan(v) ? acc + v : fmax(acc, v));
    }
    out[k] = acc;
}

// ------------------------------------------------------------------ embeddings (ids are checked on the host)
__kernel void gather(__global const T* table, __global const int* ids, __global T* out, const int rows, const int width) {
    int c = get_global_id(0), r = get_global_id(1);
    if (c < width && r < rows) out[(long) r * width + c] = table[(long) ids[r] * width + c];
}

/** One work-item per column loops over all rows in order: no atomics, deterministic sums. */
__kernel void scatter_add(__global const T* src, __global const int* ids, __global T* table, const int rows, const int width) {
    int c = get_global_id(0);
    if (c >= width) return;
    for (int r = 0; r < rows; r++) {
        table[(long) ids[r] * width + c] += src[(long) r * width + c];
    }
}

// ------------------------------------------------------------------ GEMM: local-memory tiles, WPTM x WPTN register block
// Work-group (TSN / WPTN, TSM / WPTM); dimension 0 runs along n so stores and B loads are contiguous.
#define RTSM (TSM / WPTM)
#define RTSN (TSN / WPTN)
#define NT (RTSM * RTSN)

__kernel __attribute__((reqd_work_group_size(RTSN, RTSM, 1)))
void gemm(const int M, const int N, const int K, const int transA, const int transB,
          const int strideA, const int strideB, const int accumulate,
          __global const T* A, __global const T* B, __global T* C) {
    const int tn = get_local_id(0);
    const int tm = get_local_id(1);
    const int tid = tm * RTSN + tn;
    const int offM = TSM * get_group_id(1);
    const int offN = TSN * get_group_id(0);
    const int p = get_global_id(2);
    A += (long) p * strideA;
    B += (long) p * strideB;
    C += (long) p * M * N;

    __local T As[TSK][TSM + 1];
    __local T Bs[TSK][TSN];
    T acc[WPTM][WPTN];
    for (int i = 0; i < WPTM; i++)
        for (int j = 0; j < WPTN; j++)
            acc[i][j] = (T) 0;

    for (int t = 0; t < K; t += TSK) {
        for (int id = tid; id < TSK * TSM; id += NT) {
            int m, q;
            if (transA) { m = id % TSM; q = id / TSM; } else { q = id % TSK; m = id / TSK; }
            int gm = offM + m, gq = t + q;
            As[q][m] = (gm < M && gq < K) ? (transA ? A[(long) gq * M + gm] : A[(long) gm * K + gq]) : (T) 0;
        }
        for (int id = tid; id < TSK * TSN; id += NT) {
            int n, q;
            if (transB) { q = id % TSK; n = id / TSK; } else { n = id % TSN; q = id / TSN; }
            int gn = offN + n, gq = t + q;
            Bs[q][n] = (gn < N && gq < K) ? (transB ? B[(long) gn * K + gq] : B[(long) gq * N + gn]) : (T) 0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int q = 0; q < TSK; q++) {
            T b[WPTN];
            for (int j = 0; j < WPTN; j++) b[j] = Bs[q][tn + j * RTSN];
            for (int i = 0; i < WPTM; i++) {
                T a = As[q][tm + i * RTSM];
                for (int j = 0; j < WPTN; j++) acc[i][j] = fma(a, b[j], acc[i][j]);
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < WPTM; i++) {
        int gm = offM + tm + i * RTSM;
        if (gm >= M) continue;
        for (int j = 0; j < WPTN; j++) {
            int gn = offN + tn + j * RTSN;
            if (gn < N) {
                long ic = (long) gm * N + gn;
                C[ic] = accumulate ? C[ic] + acc[i][j] : acc[i][j];
            }
        }
    }
}

// CPU devices (PoCL and the like): no local memory and no barriers, which such drivers run as loops. As in a CPU BLAS,
// both operands are first packed into panels that the micro-kernel reads front to back: A into RM-row panels
// Ap[p][mb][q][RM], B into VW-column panels Bp[p][nb][q][VW], zero-padded past M and N (which also absorbs transA and
// transB). Each work-item then keeps an RM x VW block of C in RM vector registers.
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define VT CAT(T, VW)
#define VLOADN CAT(vload, VW)
#define VSTOREN CAT(vstore, VW)
__kernel void pack_a(__global const T* A, __global T* Ap, const int M, const int K, const int transA, const int strideA,
                     const int MB) {
    const int q = get_global_id(0), m = get_global_id(1), p = get_global_id(2);
    if (q >= K || m >= MB * RM) return;
    A += (long) p * strideA;
    T v = (T) 0;
    if (m < M) v = transA ? A[(long) q * M + m] : A[(long) m * K + q];
    Ap[(((long) p * MB + m / RM) * K + q) * RM + m % RM] = v;
}

__kernel void pack_b(__global const T* B, __global T* Bp, const int N, const int K, const int transB, const int strideB,
                     const int NB) {
    const int n = get_global_id(0), q = get_global_id(1), p = get_global_id(2);
    if (n >= NB * VW || q >= K) return;
    B += (long) p * strideB;
    T v = (T) 0;
    if (n < N) v = transB ? B[(long) n * K + q] : B[(long) q * N + n];
    Bp[(((long) p * NB + n / VW) * K + q) * VW + n % VW] = v;
}

__kernel void gemm_rb(const int M, const int N, const int K, const int accumulate, const int MB, const int NB,
                      __global const T* Ap, __global const T* Bp, __global T* C) {
    const int nb = get_global_id(0), mb = get_global_id(1), p = get_global_id(2);
    if (nb >= NB || mb >= MB) return;
    __global const T* a = Ap + ((long) p * MB + mb) * K * RM;
    __global const T* b = Bp + ((long) p * NB + nb) * K * VW;
    VT acc[RM];
    for (int i = 0; i < RM; i++) acc[i] = (VT) 0;
    for (int q = 0; q < K; q++) {
        VT bv = VLOADN(q, b);
        for (int i = 0; i < RM; i++) acc[i] = fma((VT) a[q * RM + i], bv, acc[i]);
    }
    C += (long) p * M * N;
    const int m0 = mb * RM, n0 = nb * VW;
    for (int i = 0; i < RM && m0 + i < M; i++) {
        __global T* c = C + (long) (m0 + i) * N + n0;
        if (n0 + VW <= N) {
            VSTOREN(accumulate ? VLOADN(0, c) + acc[i] : acc[i], 0, c);
        } else {
            T tmp[VW];
            VSTOREN(acc[i], 0, tmp);
            for (int j = 0; n0 + j < N; j++) c[j] = accumulate ? c[j] + tmp[j] : tmp[j];
        }
    }
}

// ------------------------------------------------------------------ fused kernels (see ClKernels#fused)
__kernel void lstm_step(__global const T* gates, __global const T* cPrev, __global T* h, __global T* c, const int B, const int H) {
    int k = get_global_id(0);
    if (k >= B * H) return;
    int b = k / H, j = k % H;
    __global const T* g = gates + (long) b * 4 * H;
    T ig = sigmoid_t(g[j]);
    T fg = sigmoid_t(g[H + j]);
    T gg = tanh(g[2 * H + j]);
    T og = sigmoid_t(g[3 * H + j]);
    T cn = fg * cPrev[k] + ig * gg;
    c[k] = cn;
    h[k] = og * tanh(cn);
}

__kernel void gru_step(__global const T* gi, __global const T* gh, __global const T* hPrev, __global T* h, const int B, const int H) {
    int k = get_global_id(0);
    if (k >= B * H) return;
    int b = k / H, j = k % H;
    __global const T* x = gi + (long) b * 3 * H;
    __global const T* y = gh + (long) b * 3 * H;
    T r = sigmoid_t(x[j] + y[j]);
    T z = sigmoid_t(x[H + j] + y[H + j]);
    T n = tanh(x[2 * H + j] + r * y[2 * H + j]);
    h[k] = ((T) 1 - z) * n + z * hPrev[k];
}

// dgates (B, 4H), dc_prev (B, H) from gates, c_prev, c, dh, dc; activations recomputed from the pre-activations
__kernel void lstm_step_backward(__global const T* gates, __global const T* cPrev, __global const T* c,
                                 __global const T* dh, __global const T* dc, __global T* dg, __global T* dcPrev,
                                 const int B, const int H) {
    int k = get_global_id(0);
    if (k >= B * H) return;
    int b = k / H, j = k % H;
    __global const T* g = gates + (long) b * 4 * H;
    __global T* d = dg + (long) b * 4 * H;
    T ig = sigmoid_t(g[j]);
    T fg = sigmoid_t(g[H + j]);
    T gg = tanh(g[2 * H + j]);
    T og = sigmoid_t(g[3 * H + j]);
    T tc = tanh(c[k]);
    T dhk = dh[k];
    T dct = dc[k] + dhk * og * ((T) 1 - tc * tc);
    d[j] = dct * gg * ig * ((T) 1 - ig);
    d[H + j] = dct * cPrev[k] * fg * ((T) 1 - fg);
    d[2 * H + j] = dct * ig * ((T) 1 - gg * gg);
    d[3 * H + j] = dhk * tc * og * ((T) 1 - og);
    dcPrev[k] = dct * fg;
}

// dgi, dgh (B, 3H), dh_prev (B, H) from gi, gh, h_prev, dh
__kernel void gru_step_backward(__global const T* gi, __global const T* gh, __global const T* hPrev,
                                __global const T* dh, __global T* dgi, __global T* dgh, __global T* dhPrev,
                                const int B, const int H) {
    int k = get_global_id(0);
    if (k >= B * H) return;
    int b = k / H, j = k % H;
    long o = (long) b * 3 * H;
    T r = sigmoid_t(gi[o + j] + gh[o + j]);
    T z = sigmoid_t(gi[o + H + j] + gh[o + H + j]);
    T ghn = gh[o + 2 * H + j];
    T n = tanh(gi[o + 2 * H + j] + r * ghn);
    T d = dh[k];
    T dz = d * (hPrev[k] - n) * z * ((T) 1 - z);
    T dn = d * ((T) 1 - z) * ((T) 1 - n * n);
    T dr = dn * ghn * r * ((T) 1 - r);
    dgi[o + j] = dr;
    dgh[o + j] = dr;
    dgi[o + H + j] = dz;
    dgh[o + H + j] = dz;
    dgi[o + 2 * H + j] = dn;
    dgh[o + 2 * H + j] = dn * r;
    dhPrev[k] = d * z;
}

/** One work-item per row. */
__kernel void softmax(__global const T* x, __global T* y, const int rows, const int cols) {
    int r = get_global_id(0);
    if (r >= rows) return;
    __global const T* xr = x + (long) r * cols;
    __global T* yr = y + (long) r * cols;
    T mx = (T) -INFINITY;
    for (int c = 0; c < cols; c++) mx = fmax(mx, xr[c]);
    T s = (T) 0;
    for (int c = 0; c < cols; c++) { T e = exp(xr[c] - mx); yr[c] = e; s += e; }
    for (int c = 0; c < cols; c++) yr[c] = yr[c] / s;
}

/** One work-item per row; eps is passed as T. */
__kernel void layer_norm(__global const T* x, __global const T* gamma, __global const T* beta, __global T* y,
                         const int rows, const int cols, const T eps) {
    int r = get_global_id(0);
    if (r >= rows) return;
    __global const T* xr = x + (long) r * cols;
    __global T* yr = y + (long) r * cols;
    T mean = (T) 0;
    for (int c = 0; c < cols; c++) mean += xr[c];
    mean /= (T) cols;
    T var = (T) 0;
    for (int c = 0; c < cols; c++) { T d = xr[c] - mean; var += d * d; }
    var /= (T) cols;
    T rstd = (T) 1 / sqrt(var + eps);
    for (int c = 0; c < cols; c++) yr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c];
}
