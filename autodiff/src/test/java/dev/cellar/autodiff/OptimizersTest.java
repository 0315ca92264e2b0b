package dev.cellar.autodiff;

import dev.cellar.api.DType;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static dev.cellar.autodiff.TestSupport.REF;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class OptimizersTest {
    private static Param param(double... v) {
        return Params.of(REF, DType.F64, "p", Shape.of(v.length), v);
    }

    /** loss = sum(p * c) so grad = c every step. */
    private static void backward(Param p, double... c) {
        try (Tape t = Tape.on(REF, DType.F64, 0)) {
            Tensor loss = t.sum(t.mul(p, t.constant(c, Shape.of(c.length))));
            t.backward(loss);
        }
    }

    @Test
    void adamMatchesPyTorchFormulas() {
        // torch.optim.Adam(lr=0.1) on p=[1,-2] with constant grad [0.5,-3]: after step 1 p -= lr*sign(g) (m_hat/sqrt(v_hat)=+-1)
        Param p = param(1, -2);
        Optimizer adam = Optimizers.adam(List.of(p), 0.1);
        backward(p, 0.5, -3);
        adam.step();
        assertArrayEquals(new double[]{0.9, -1.9}, p.toDoubles(), 1e-7);
        adam.zeroGrad();
        backward(p, 0.5, -3);
        adam.step(); // constant grads keep m_hat/sqrt(v_hat) = +-1 (up to eps)
        assertArrayEquals(new double[]{0.8, -1.8}, p.toDoubles(), 1e-6);
    }

    @Test
    void sgdMomentumAndStateRoundTrip() {
        Param p = param(1.0);
        Optimizer sgd = Optimizers.sgd(List.of(p), 0.1, 0.9);
        backward(p, 1.0);
        sgd.step(); // b = 1, p = 0.9
        sgd.zeroGrad();
        backward(p, 1.0);
        sgd.step(); // b = 1.9, p = 0.71
        assertEquals(0.71, p.toDoubles()[0], 1e-12);
        Map<String, double[]> state = sgd.exportState();
        assertArrayEquals(new double[]{1.9}, state.get("p.momentum"), 1e-12);
        Param q = param(0.71);
        Optimizer again = Optimizers.sgd(List.of(q), 0.1, 0.9);
        again.importState(state);
        backward(q, 1.0);
        again.step();
        sgd.zeroGrad();
        backward(p, 1.0);
        sgd.step();
        assertArrayEquals(p.toDoubles(), q.toDoubles(), 0.0);
    }

    @Test
    void adamWDecaysDecoupled() {
        Param p = param(2.0);
        Optimizer opt = Optimizers.adamW(List.of(p), 0.1, 0.5);
        backward(p, 1.0);
        opt.step(); // p = 2 * (1 - 0.05) - 0.1 = 1.8
        assertEquals(1.8, p.toDoubles()[0], 1e-7);
    }

    @Test
    void clipByGlobalNormAndValue() {
        Param p = param(0, 0);
        backward(p, 3, 4);
        assertEquals(5.0, Clip.byGlobalNorm(List.of(p), 1.0), 1e-12);
        assertArrayEquals(new double[]{0.6, 0.8}, p.grad().toDoubles(), 1e-6);
        Clip.byValue(List.of(p), 0.7);
        assertArrayEquals(new double[]{0.6, 0.7}, p.grad().toDoubles(), 1e-6);
    }

    @Test
    void schedules() {
        assertEquals(0.01, Schedule.step(0.1, 10, 0.1).lr(15), 1e-12);
        assertEquals(0.1, Schedule.cosine(0.1, 100, 0).lr(0), 1e-12);
        assertEquals(0.05, Schedule.cosine(0.1, 100, 0).lr(50), 1e-12);
        assertEquals(0.0, Schedule.cosine(0.1, 100, 0).lr(100), 1e-12);
    }

    @Test
    void badLearningRateIsRejected() {
        var e = assertThrows(dev.cellar.api.CellarException.class, () -> Optimizers.adam(List.of(param(1)), -1));
        assertEquals("learning rate -1.0 must be a positive number", e.getMessage());
    }
}
