package dev.cellar.cells;

import dev.cellar.api.CustomOp;
import dev.cellar.api.DType;
import dev.cellar.api.Ops;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;

import java.util.List;
import java.util.Optional;

/**
 * The LSTM's pointwise half as one op: (gates (B, 4H) in PyTorch order i, f, g, o; c_prev (B, H)) to (h, c). It
 * runs the backend's fused {@code lstm_step} / {@code lstm_step_backward} kernels for F32 when the backend has them
 * and the composed ops otherwise, and it saves only its inputs and c for backward (the gate activations are
 * recomputed), where the composed graph would keep a dozen (B, H) intermediates per time step.
 */
final class LstmPointwise implements CustomOp {
    static final LstmPointwise INSTANCE = new LstmPointwise();

    @Override
    public String name() {
        return "lstm_pointwise";
    }

    @Override
    public List<Tensor> forward(Context ctx, List<Tensor> in) {
        Ops ops = ctx.ops();
        Tensor gates = in.get(0), cPrev = in.get(1);
        Shape s = cPrev.shape();
        int b = s.dim(0), h = s.dim(1);
        Optional<List<Tensor>> fused = ops.dtype() == DType.F32
                ? ops.fused("lstm_step", List.of(gates, cPrev), List.of(s, s), b, h) : Optional.empty();
        List<Tensor> out = fused.orElseGet(() -> composed(ops, gates, cPrev, h));
        ctx.save(gates, cPrev, out.get(1));
        return out;
    }

    static List<Tensor> composed(Ops ops, Tensor gates, Tensor cPrev, int h) {
        List<Tensor> g = ops.split(gates, 1, h, h, h, h);
        Tensor c = ops.add(ops.mul(ops.sigmoid(g.get(1)), cPrev), ops.mul(ops.sigmoid(g.get(0)), ops.tanh(g.get(2))));
        return List.of(ops.mul(ops.sigmoid(g.get(3)), ops.tanh(c)), c);
    }

    @Override
    public List<Tensor> backward(Context ctx, List<Tensor> grads) {
        Ops ops = ctx.ops();
        Tensor gates = ctx.saved().get(0), cPrev = ctx.saved().get(1), c = ctx.saved().get(2);
        Tensor dh = grads.get(0), dc = grads.get(1);
        Shape s = cPrev.shape();
        int b = s.dim(0), h = s.dim(1);
        if (ops.dtype() == DType.F32) {
            Optional<List<Tensor>> fused = ops.fused("lstm_step_backward", List.of(gates, cPrev, c, dh, dc),
                    List.of(gates.shape(), s), b, h);
            if (fused.isPresent()) {
                return fused.get();
            }
        }
        List<Tensor> g = ops.split(gates, 1, h, h, h, h);
        Tensor i = ops.sigmoid(g.get(0)), f = ops.sigmoid(g.get(1)), gg = ops.tanh(g.get(2)), o = ops.sigmoid(g.get(3));
        Tensor tc = ops.tanh(c);
        Tensor one = ops.scalar(1.0);
        // dc_total = dc + dh o (1 - tanh(c)^2)
        Tensor dct = ops.add(dc, ops.mul(ops.mul(dh, o), ops.sub(one, ops.mul(tc, tc))));
        Tensor di = ops.mul(ops.mul(dct, gg), ops.mul(i, ops.sub(one, i)));
        Tensor df = ops.mul(ops.mul(dct, cPrev), ops.mul(f, ops.sub(one, f)));
        Tensor dg = ops.mul(ops.mul(dct, i), ops.sub(one, ops.mul(gg, gg)));
        Tensor dO = ops.mul(ops.mul(dh, tc), ops.mul(o, ops.sub(one, o)));
        return List.of(ops.concat(1, di, df, dg, dO), ops.mul(dct, f));
    }
}
