package dev.cellar.api.spi;

/**
 * A batched GEMM: for each of {@code batch} problems, C (m, n) = op(A) (m, k) @ op(B) (k, n), plus C when
 * {@code accumulate}. op transposes when the flag is set, i.e. A is stored (k, m) and B (n, k). Matrices are
 * row-major and contiguous; problem i reads A at {@code i * strideA}, B at {@code i * strideB} (0 = shared) and
 * writes C at {@code i * m * n}.
 */
public record MatmulSpec(int batch, int m, int n, int k, boolean transA, boolean transB,
                         int strideA, int strideB, boolean accumulate) {
    public static MatmulSpec of(int m, int n, int k) {
        return new MatmulSpec(1, m, n, k, false, false, 0, 0, false);
    }

    public long flops() {
        return 2L * batch * m * n * k;
    }
}
