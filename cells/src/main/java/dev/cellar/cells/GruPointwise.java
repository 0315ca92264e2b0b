package dev.cellar.cells;

import dev.cellar.api.CustomOp;
import dev.cellar.api.DType;
import dev.cellar.api.Ops;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;

import java.util.List;
import java.util.Optional;

/**
 * The GRU's pointwise half as one op: (gi = x W_ih^T + b_ih, gh = h W_hh^T + b_hh, both (B, 3H) in PyTorch order
 * r, z, n; h_prev (B, H)) to h. It runs the backend's fused {@code gru_step} / {@code gru_step_backward} kernels for
 * F32 when the backend has them and the composed ops otherwise, saving only its inputs for backward.
 */
final class GruPointwise implements CustomOp {
    static final GruPointwise INSTANCE = new GruPointwise();

    @Override
    public String name() {
        return "gru_pointwise";
    }

    @Override
    public List<Tensor> forward(Context ctx, List<Tensor> in) {
        Ops ops = ctx.ops();
        Tensor gi = in.get(0), gh = in.get(1), h = in.get(2);
        Shape s = h.shape();
        Optional<List<Tensor>> fused = ops.dtype() == DType.F32
                ? ops.fused("gru_step", List.of(gi, gh, h), List.of(s), s.dim(0), s.dim(1)) : Optional.empty();
        List<Tensor> out = fused.orElseGet(() -> List.of(composed(ops, gi, gh, h, s.dim(1))));
        ctx.save(gi, gh, h);
        return out;
    }

    static Tensor composed(Ops ops, Tensor gi, Tensor gh, Tensor h, int hidden) {
        List<Tensor> x = ops.split(gi, 1, hidden, hidden, hidden);
        List<Tensor> hh = ops.split(gh, 1, hidden, hidden, hidden);
        Tensor r = ops.sigmoid(ops.add(x.get(0), hh.get(0)));
        Tensor z = ops.sigmoid(ops.add(x.get(1), hh.get(1)));
        Tensor n = ops.tanh(ops.add(x.get(2), ops.mul(r, hh.get(2))));
        return ops.add(n, ops.mul(z, ops.sub(h, n)));                              // (1-z) n + z h
    }

    @Override
    public List<Tensor> backward(Context ctx, List<Tensor> grads) {
        Ops ops = ctx.ops();
        Tensor gi = ctx.saved().get(0), gh = ctx.saved().get(1), h = ctx.saved().get(2);
        Tensor dh = grads.get(0);
        Shape s = h.shape();
        int hidden = s.dim(1);
        if (ops.dtype() == DType.F32) {
            Optional<List<Tensor>> fused = ops.fused("gru_step_backward", List.of(gi, gh, h, dh),
                    List.of(gi.shape(), gh.shape(), s), s.dim(0), hidden);
            if (fused.isPresent()) {
                return fused.get();
            }
        }
        List<Tensor> x = ops.split(gi, 1, hidden, hidden, hidden);
        List<Tensor> hh = ops.split(gh, 1, hidden, hidden, hidden);
        Tensor one = ops.scalar(1.0);
        Tensor r = ops.sigmoid(ops.add(x.get(0), hh.get(0)));
        Tensor z = ops.sigmoid(ops.add(x.get(1), hh.get(1)));
        Tensor n = ops.tanh(ops.add(x.get(2), ops.mul(r, hh.get(2))));
        Tensor dz = ops.mul(ops.mul(dh, ops.sub(h, n)), ops.mul(z, ops.sub(one, z)));
        Tensor dn = ops.mul(ops.mul(dh, ops.sub(one, z)), ops.sub(one, ops.mul(n, n)));
        Tensor dr = ops.mul(ops.mul(dn, hh.get(2)), ops.mul(r, ops.sub(one, r)));
        return List.of(ops.concat(1, dr, dz, dn), ops.concat(1, dr, dz, ops.mul(dn, r)), ops.mul(dh, z));
    }
}
