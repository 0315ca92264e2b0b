package dev.cellar.autodiff;

import dev.cellar.api.CustomOp;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.autodiff.testkit.GradCheck;
import dev.cellar.autodiff.testkit.GradCheck.Input;
import org.junit.jupiter.api.Test;

import java.util.List;

import static dev.cellar.autodiff.TestSupport.REF;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A check that cannot fail is worthless: a wrong derivative must be caught and located. */
class GradCheckCatchesErrorsTest {
    /** sin-free cube whose backward forgets the factor 3. */
    static final class WrongCube implements CustomOp {
        @Override
        public String name() {
            return "wrong-cube";
        }

        @Override
        public List<Tensor> forward(Context ctx, List<Tensor> in) {
            ctx.save(in.get(0));
            return List.of(ctx.ops().mul(in.get(0), ctx.ops().mul(in.get(0), in.get(0))));
        }

        @Override
        public List<Tensor> backward(Context ctx, List<Tensor> g) {
            Tensor x = ctx.saved().get(0);
            return List.of(ctx.ops().mul(g.get(0), ctx.ops().mul(x, x))); // should be 3 x^2
        }
    }

    @Test
    void wrongDerivativeFailsAndNamesTheWorstElement() {
        double[] x = {0.5, -1.0, 2.0, 0.25};
        GradCheck.Report r = GradCheck.withDefaults().check(REF, List.of(),
                List.of(Input.of("x", Shape.of(2, 2), x)), (ops, in) -> ops.custom(new WrongCube(), in.get(0)).get(0));
        assertFalse(r.passed(), r.summary());
        // the worst element is x = 2.0 at flat index 2, multi-index [1, 0]
        assertTrue(r.summary().contains("input x(2, 2) element 2 [1, 0]"), r.summary());
        assertTrue(r.summary().contains("FAILED"), r.summary());
        AssertionError e = assertThrows(AssertionError.class, r::assertPassed);
        assertTrue(e.getMessage().contains("analytic"));
    }

    @Test
    void correctDerivativePasses() {
        GradCheck.Report r = GradCheck.withDefaults().check(REF, List.of(),
                List.of(Input.of("x", Shape.of(3), new double[]{0.5, -1, 2})),
                (ops, in) -> ops.custom(new PrimitiveGradCheckProperties.Cube(), in.get(0)).get(0));
        assertTrue(r.passed(), r.summary());
    }

    @Test
    void paramsAreCheckedToo() {
        var init = Params.creator(REF, dev.cellar.api.DType.F64, new java.util.SplittableRandom(1));
        var w = init.param("w", Shape.of(2, 3), dev.cellar.api.Init.uniform(1));
        GradCheck.Report r = GradCheck.withDefaults().check(REF, List.of(w),
                List.of(Input.of("x", Shape.of(4, 3), TestSupport.values(Shape.of(4, 3), 3, 0, 1, true))),
                (ops, in) -> ops.tanh(ops.linear(in.get(0), w, null)));
        assertTrue(r.passed(), r.summary());
        assertTrue(r.summary().contains("(18 elements"), r.summary());
    }
}
