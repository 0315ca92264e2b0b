package dev.cellar.autodiff;

import dev.cellar.api.DType;
import dev.cellar.api.Init;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.ParamInit;
import dev.cellar.autodiff.testkit.GradCheck;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The README's "Autodiff in a few lines" example, verbatim, checked against GradCheck. */
class ReadmeExampleTest {
    @Test
    void readmeExampleRunsAndItsGradientIsRight() {
        double[] printed;
        List<Param> params;
        try (Backend cpu = Backends.open("cpu-reference", BackendConfig.defaults());
             Tape t = Tape.on(cpu, DType.F64, 0)) {
            ParamInit init = Params.creator(cpu, DType.F64, new SplittableRandom(1));
            Param w = init.param("w", Shape.of(3, 2), Init.uniform(0.5));        // (out, in)
            Param b = init.param("b", Shape.of(3), Init.zeros());
            Tensor x = t.constant(new double[]{1, 2, -1, 0.5}, Shape.of(2, 2));  // (batch, in)
            Tensor y = t.tanh(t.linear(x, w, b));                               // (batch, out)
            t.backward(t.sum(y));
            System.out.println(Arrays.toString(w.grad().toDoubles()));          // d sum(y) / d w, (3, 2) row-major
            printed = w.grad().toDoubles();
            params = List.of(w, b);
            GradCheck.Report r = GradCheck.withDefaults().check(cpu, params, List.of(), (ops, in) ->
                    ops.tanh(ops.linear(ops.constant(new double[]{1, 2, -1, 0.5}, Shape.of(2, 2)), w, b)));
            assertTrue(r.passed(), r.summary());
        }
        assertEquals(6, printed.length);
        // d/dw_ij sum tanh(xw^T+b) = sum_batch (1 - y^2) x_j: bounded by sum |x_j|
        assertTrue(Math.abs(printed[0]) <= 2 && Math.abs(printed[1]) <= 2.5, Arrays.toString(printed));
    }
}
