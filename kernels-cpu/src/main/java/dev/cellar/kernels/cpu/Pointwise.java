package dev.cellar.kernels.cpu;

/**
 * The transcendental-heavy F32 loops: fused LSTM/GRU steps (see {@link CpuKernels#fused}) and tanh, sigmoid, exp.
 * Each method covers rows {@code [b0, b1)} of a batch (or elements {@code [0, n)}) so callers can split it over threads.
 * {@link ScalarPointwise} is the portable form; {@link VectorPointwise} vectorises them, bit-reproducibly.
 */
interface Pointwise {
    /** h, c from gates (B, 4H; order i, f, g, o) and c_prev. */
    void lstmForward(float[] g, float[] cp, float[] h, float[] c, int hid, int b0, int b1);

    /** dgates, dc_prev from gates, c_prev, c, dh, dc. */
    void lstmBackward(float[] g, float[] cp, float[] c, float[] dh, float[] dc, float[] dg, float[] dcp, int hid, int b0, int b1);

    /** h from gi, gh (B, 3H; order r, z, n) and h_prev. */
    void gruForward(float[] gi, float[] gh, float[] hp, float[] h, int hid, int b0, int b1);

    /** dgi, dgh, dh_prev from gi, gh, h_prev, dh. */
    void gruBackward(float[] gi, float[] gh, float[] hp, float[] dh, float[] dgi, float[] dgh, float[] dhp, int hid, int b0, int b1);

    /** o[oo + j] = a[ao + j] + b[bo + j] for j in [0, n); o may be a at the same offset. */
    void add(float[] a, int ao, float[] b, int bo, float[] o, int oo, int n);

    /** o[i] = tanh(a[i]) for i in [i0, i1); likewise {@link #sigmoid} and {@link #exp}. */
    void tanh(float[] a, float[] o, int i0, int i1);

    void sigmoid(float[] a, float[] o, int i0, int i1);

    void exp(float[] a, float[] o, int i0, int i1);

    /** GELU (tanh approximation) and its derivative, as {@link ReferenceKernels} defines them. */
    void gelu(float[] a, float[] o, int i0, int i1);

    void geluGrad(float[] a, float[] o, int i0, int i1);

    /** o = g * geluGrad(a), the float product the unfused MUL of g and GELU_GRAD gives, in one pass. */
    void geluBackward(float[] a, float[] g, float[] o, int i0, int i1);

    /** Rows [r0, r1) of x (rows, cols): y = exp(x - max) / sum exp(x - max) along the row. */
    void softmax(float[] x, float[] y, int cols, int r0, int r1);

    /**
     * Rows [0, rows) of x at row stride {@code stride}, row r of {@code len0 + r <= stride} elements: each in place
     * becomes the softmax of {@code scale} times itself; the rest of each row is scratch and comes back zero up to the
     * row's length rounded up to whole vectors. Attention's causal rows, one longer than the last, so pad to vectors.
     */
    void causalSoftmax(float[] x, int stride, int rows, int len0, float scale);

    /**
     * Rows [0, rows) of {@link #causalSoftmax}'s backward, row r of {@code len0 + r} elements: ds = scale p (dp -
     * sum_j p_j dp_j), with row r of p at {@code p[po + r*ps]}, of dp at {@code dp[r*dps]} and of ds at
     * {@code ds[dso + r*dss]}.
     */
    void causalSoftmaxBackward(float[] p, int po, int ps, float[] dp, int dps, float[] ds, int dso, int dss, int rows,
                               int len0, float scale);

    /** Rows [r0, r1): dx = y (dy - sum_j dy_j y_j). */
    void softmaxBackward(float[] y, float[] dy, float[] dx, int cols, int r0, int r1);

    /**
     * Rows [r0, r1) of x (rows, cols) with targets t: lse[r] = log sum_j exp(x[r, j]) (shifted by the row's max) and
     * loss[r] = lse[r] - x[r, t[r]].
     */
    void crossEntropy(float[] x, int[] t, float[] loss, float[] lse, int cols, int r0, int r1);

    /** Rows [r0, r1): dx[r, j] = d[r] (exp(x[r, j] - lse[r]) - [j = t[r]]). */
    void crossEntropyBackward(float[] x, int[] t, float[] lse, float[] d, float[] dx, int cols, int r0, int r1);

    /** Rows [r0, r1): y = (x - mean) / sqrt(var + eps) gamma + beta, var the biased variance of the row. */
    void layerNorm(float[] x, float[] gamma, float[] beta, float[] y, int cols, float eps, int r0, int r1);

    /**
     * Layer norm's backward over rows [r0, r1) of (rows, cols): dx, and each column's dgamma and dbeta sums added
     * into acc[j] and acc[cols + j]; xhat is a scratch row of cols.
     */
    void layerNormBackward(float[] x, float[] gamma, float[] dy, float[] dx, float[] acc, float[] xhat, int cols,
                           float eps, int r0, int r1);
}
