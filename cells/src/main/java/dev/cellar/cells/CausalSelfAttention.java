package dev.cellar.cells;

import dev.cellar.api.CustomOp;
import dev.cellar.api.DType;
import dev.cellar.api.Ops;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;

import java.util.List;
import java.util.Optional;

/**
 * Causal multi-head attention as one op: (q (B, T, D), k (B, S, D), v (B, S, D)), heads side by side in D, to y
 * (B, T, D), query i (at position S - T + i) attending to keys 0 .. S - T + i. It runs the backend's fused
 * {@code attention} / {@code attention_backward} kernels for F32 when the backend has them and the composed ops
 * otherwise (split into heads, q k^T / sqrt(d_h) plus a mask, softmax, times v); either way it saves q, k, v and the
 * probabilities (B, H, T, S) for backward.
 */
final class CausalSelfAttention implements CustomOp {
    static final double MASKED = -1e9;
    private final int heads;

    CausalSelfAttention(int heads) {
        this.heads = heads;
    }

    @Override
    public String name() {
        return "causal_self_attention";
    }

    @Override
    public List<Tensor> forward(Context ctx, List<Tensor> in) {
        Ops ops = ctx.ops();
        Tensor q = in.get(0), k = in.get(1), v = in.get(2);
        int b = q.dim(0), t = q.dim(1), d = q.dim(2), s = k.dim(1);
        Optional<List<Tensor>> fused = ops.dtype() == DType.F32
                ? ops.fused("attention", List.of(q, k, v), List.of(q.shape(), Shape.of(b, heads, t, s)), b, t, s, heads, d)
                : Optional.empty();
        Tensor y, p;
        if (fused.isPresent()) {
            y = fused.get().get(0);
            p = fused.get().get(1);
        } else {
            int dh = d / heads;
            Tensor att = ops.mul(ops.matmul(split(ops, q), ops.transpose(split(ops, k), 2, 3)), 1.0 / Math.sqrt(dh));
            p = ops.softmax(ops.add(att, causalMask(ops, t, s)), -1);                   // (B, H, T, S)
            y = merge(ops, ops.matmul(p, split(ops, v)));
        }
        ctx.save(q, k, v, p);
        return List.of(y);
    }

    @Override
    public List<Tensor> backward(Context ctx, List<Tensor> grads) {
        Ops ops = ctx.ops();
        List<Tensor> saved = ctx.saved();
        Tensor q = saved.get(0), k = saved.get(1), v = saved.get(2), p = saved.get(3), dy = grads.get(0);
        int b = q.dim(0), t = q.dim(1), d = q.dim(2), s = k.dim(1);
        if (ops.dtype() == DType.F32) {
            Optional<List<Tensor>> fused = ops.fused("attention_backward", List.of(q, k, v, p, dy),
                    List.of(q.shape(), k.shape(), v.shape()), b, t, s, heads, d);
            if (fused.isPresent()) {
                return fused.get();
            }
        }
        // dP = dy v^T, dS = p (dP - rowsum(p dP)) / sqrt(d_h); dq = dS k, dk = dS^T q, dv = p^T dy
        Tensor dyh = split(ops, dy), qh = split(ops, q), kh = split(ops, k);
        Tensor dp = ops.matmul(dyh, ops.transpose(split(ops, v), 2, 3));
        Tensor ds = ops.mul(ops.mul(p, ops.sub(dp, ops.sum(ops.mul(dp, p), -1, true))), 1.0 / Math.sqrt(d / heads));
        return List.of(merge(ops, ops.matmul(ds, kh)), merge(ops, ops.matmul(ops.transpose(ds, 2, 3), qh)),
                merge(ops, ops.matmul(ops.transpose(p, 2, 3), dyh)));
    }

    /** (B, N, D) -> (B, H, N, d_h). */
    private Tensor split(Ops ops, Tensor x) {
        return ops.permute(ops.reshape(x, x.dim(0), x.dim(1), heads, x.dim(2) / heads), 0, 2, 1, 3);
    }

    /** (B, H, N, d_h) -> (B, N, D). */
    private static Tensor merge(Ops ops, Tensor x) {
        return ops.reshape(ops.permute(x, 0, 2, 1, 3), x.dim(0), x.dim(2), x.dim(1) * x.dim(3));
    }

    /** (T, S) additive mask: query i (absolute position S - T + i) may see keys j <= S - T + i. */
    private static Tensor causalMask(Ops ops, int t, int s) {
        int start = s - t;
        double[] m = new double[t * s];
        for (int i = 0; i < t; i++) {
            for (int j = start + i + 1; j < s; j++) {
                m[i * s + j] = MASKED;
            }
        }
        return ops.constant(m, Shape.of(t, s));
    }
}
