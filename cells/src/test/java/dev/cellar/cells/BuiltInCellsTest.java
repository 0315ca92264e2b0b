package dev.cellar.cells;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Ops;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Cell;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.State;
import dev.cellar.api.spi.Step;
import dev.cellar.autodiff.Params;
import dev.cellar.autodiff.Tape;
import dev.cellar.cells.kit.CellChecks;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Cell-specific promises beyond the generic contract: layouts, init, options, hoisting, the transformer's cache. */
class BuiltInCellsTest {
    static Cell create(CellProvider p, int in, int h, int layer, int layers, Map<String, String> opt) {
        return p.create(new CellConfig(in, h, layer, layers, opt), Params.creator(CellChecks.REF, DType.F64, new SplittableRandom(3)));
    }

    static Map<String, Shape> shapes(Cell c) {
        Map<String, Shape> m = new java.util.LinkedHashMap<>();
        c.params().forEach(p -> m.put(p.name(), p.shape()));
        return m;
    }

    @Test
    void pytorchParamLayouts() {
        int i = 3, h = 5;
        assertEquals(Map.of("weight_ih", Shape.of(h, i), "weight_hh", Shape.of(h, h), "bias_ih", Shape.of(h), "bias_hh", Shape.of(h)),
                shapes(create(new Rnn(), i, h, 0, 1, Map.of())));
        assertEquals(List.of("weight_ih", "weight_hh", "bias_ih", "bias_hh"), List.copyOf(shapes(create(new Lstm(), i, h, 0, 1, Map.of())).keySet()));
        assertEquals(Shape.of(4 * h, i), shapes(create(new Lstm(), i, h, 0, 1, Map.of())).get("weight_ih"));
        assertEquals(Shape.of(3 * h, h), shapes(create(new Gru(), i, h, 0, 1, Map.of())).get("weight_hh"));
    }

    @Test
    void initIsPytorchUniformAndLstmForgetBiasSumsToOne() {
        int h = 4;
        Cell lstm = create(new Lstm(), 3, h, 0, 1, Map.of());
        double bound = 1 / Math.sqrt(h);
        for (Param p : lstm.params()) {
            for (double v : p.toDoubles()) {
                assertTrue(Math.abs(v) <= Math.max(bound, 1.0), p.name() + " value " + v);
            }
        }
        double[] bih = lstm.params().get(2).toDoubles(), bhh = lstm.params().get(3).toDoubles();
        for (int j = 0; j < 4 * h; j++) {
            boolean forget = j >= h && j < 2 * h;
            if (forget) {
                assertEquals(1.0, bih[j] + bhh[j], 0.0, "total forget bias at " + j);
                assertEquals(0.0, bhh[j], 0.0);
            } else {
                assertTrue(Math.abs(bih[j]) <= bound && Math.abs(bhh[j]) <= bound);
            }
        }
    }

    @Test
    void lstmPeepholesAreOffByDefaultAndPassTheContractWhenOn() {
        assertEquals(4, create(new Lstm(), 2, 3, 0, 1, Map.of()).params().size());
        Map<String, String> on = Map.of("peepholes", "true");
        assertEquals(List.of("weight_ih", "weight_hh", "bias_ih", "bias_hh", "peephole_i", "peephole_f", "peephole_o"),
                List.copyOf(shapes(create(new Lstm(), 2, 3, 0, 1, on)).keySet()));
        CellChecks.stepEqualsSequence(new Lstm(), 2, 3, 2, 3, on);
        CellChecks.assertPasses(CellChecks.gradcheckStep(new Lstm(), 2, 2, 3, on, 4), "lstm peepholes");
        CellChecks.assertPasses(CellChecks.gradcheckSequence(new Lstm(), 2, 3, 2, 3, on, 5), "lstm peepholes");
    }

    /** Counts linear calls: the recurrent cells project the input once per window, mingru does nothing else. */
    @Test
    void sequenceHoistsTheInputProjection() {
        int t = 5;
        Map<String, Integer> expected = Map.of("rnn", 1 + t, "lstm", 1 + t, "gru", 1 + t, "layernorm-lstm", 1 + t, "mingru", 1);
        for (CellProvider p : List.of(new Rnn(), new Lstm(), new Gru(), new LayerNormLstm(), new MinGru())) {
            Cell cell = create(p, 3, 4, 0, 1, Map.of());
            AtomicInteger linears = new AtomicInteger();
            try (Tape tape = Tape.on(CellChecks.REF, DType.F64, 0)) {
                Ops counting = (Ops) Proxy.newProxyInstance(Ops.class.getClassLoader(), new Class<?>[]{Ops.class}, (proxy, m, args) -> {
                    if (m.getName().equals("linear")) {
                        linears.incrementAndGet();
                    }
                    try {
                        return m.invoke(tape, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
                cell.sequence(counting, tape.constant(new double[2 * t * 3], Shape.of(2, t, 3)), cell.initialState(tape, 2));
            }
            assertTrue(linears.get() <= expected.get(p.id()), p.id() + ": " + linears.get() + " linear calls for T=" + t);
        }
    }

    @Test
    void transformerValidatesHeadsWithTheFix() {
        CellarException e = assertThrows(CellarException.class, () -> create(new Transformer(), 250, 250, 0, 1, Map.of()));
        assertTrue(e.getMessage().contains("hidden 250 not divisible by heads 4"), e.getMessage());
    }

    @Test
    void transformerPositionsAtTheBottomAndFinalNormAtTheTop() {
        Map<String, String> opt = Map.of("heads", "2", "context", "6");
        assertTrue(shapes(create(new Transformer(), 4, 4, 0, 2, opt)).containsKey("pos"));
        assertTrue(!shapes(create(new Transformer(), 4, 4, 0, 2, opt)).containsKey("lnf.weight"));
        assertTrue(!shapes(create(new Transformer(), 4, 4, 1, 2, opt)).containsKey("pos"));
        assertTrue(shapes(create(new Transformer(), 4, 4, 1, 2, opt)).containsKey("lnf.weight"));
        assertEquals(Shape.of(6, 4), shapes(create(new Transformer(), 4, 4, 0, 1, opt)).get("pos"));
        assertEquals(Shape.of(4, 3), shapes(create(new Transformer(), 3, 4, 0, 1, opt)).get("input.weight"));
        assertEquals(Shape.of(16, 4), shapes(create(new Transformer(), 4, 4, 0, 1, Map.of("heads", "2"))).get("ff.up.weight"));
    }

    @Test
    void transformerWindowLongerThanContextIsRejected() {
        Cell cell = create(new Transformer(), 2, 2, 0, 1, Map.of("heads", "1", "context", "3"));
        try (Tape tape = Tape.on(CellChecks.REF, DType.F64, 0)) {
            CellarException e = assertThrows(CellarException.class,
                    () -> cell.sequence(tape, tape.zeros(Shape.of(1, 4, 2)), cell.initialState(tape, 1)));
            assertTrue(e.getMessage().contains("window 4 is longer than the transformer context 3"), e.getMessage());
        }
    }

    /**
     * Past {@code context} tokens the KV cache slides: the layer re-encodes its newest context/2 inputs from position 0.
     * So every stepped output equals the last output of {@code sequence} over the inputs since the latest slide.
     */
    @Test
    void transformerStepKeepsGoingPastTheContextBySliding() {
        int context = 4, keep = context / 2, b = 2, in = 3, d = 2, n = 11;
        Cell cell = create(new Transformer(), in, d, 0, 1, Map.of("heads", "2", "context", String.valueOf(context)));
        SplittableRandom r = new SplittableRandom(9);
        double[] all = r.doubles(b * n * in, -1, 1).toArray();
        try (Tape tape = Tape.on(CellChecks.REF, DType.F64, 0)) {
            Tensor xs = tape.constant(all, Shape.of(b, n, in));                              // (B, n, I)
            State s = cell.initialState(tape, b);
            int windowStart = 0;
            for (int i = 0; i < n; i++) {
                if (i - windowStart >= context) {
                    windowStart = i - keep;
                }
                Step st = cell.step(tape, tape.reshape(tape.slice(xs, 1, i, i + 1), b, in), s); // (B, D)
                s = st.next();
                Tensor ref = cell.sequence(tape, tape.slice(xs, 1, windowStart, i + 1), cell.initialState(tape, b)).out();
                Tensor last = tape.reshape(tape.slice(ref, 1, ref.dim(1) - 1, ref.dim(1)), b, d); // (B, D)
                assertArrayEquals(last.toDoubles(), st.out().toDoubles(), 1e-12, "token " + i + " (window from " + windowStart + ")");
                assertTrue(s.get(0).dim(1) <= context, "cache length " + s.get(0).dim(1));
            }
        }
    }
}
