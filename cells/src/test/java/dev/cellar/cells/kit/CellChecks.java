package dev.cellar.cells.kit;

import dev.cellar.api.DType;
import dev.cellar.api.Ops;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.Cell;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.State;
import dev.cellar.api.spi.Step;
import dev.cellar.autodiff.Params;
import dev.cellar.autodiff.Tape;
import dev.cellar.autodiff.testkit.GradCheck;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cell contract, as static checks any test can call for any {@link CellProvider}. All run in F64 on
 * {@code cpu-reference}. {@link CellContract} wraps them for plugin authors.
 */
public final class CellChecks {
    public static final Backend REF = Backends.select(Backends.discover(CellChecks.class.getClassLoader()), "cpu-reference", null)
            .open(BackendConfig.defaults());

    private CellChecks() {
    }

    /** Options that keep any built-in cell tiny: one head, a short context. Cells ignore options they do not know. */
    public static Map<String, String> tinyOptions() {
        return Map.of("heads", "1", "context", "8", "ff", "6");
    }

    public static Cell create(CellProvider p, int in, int hidden, Map<String, String> options, long seed) {
        return p.create(new CellConfig(in, hidden, 0, 1, options), Params.creator(REF, DType.F64, new SplittableRandom(seed)));
    }

    static double[] values(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = r.nextDouble() * 2 - 1;
        }
        return v;
    }

    /** A state reached by one step from the initial state on a random input (so it is not all zeros). */
    static State warmState(Ops ops, Cell cell, int b, int in, long seed) {
        Tensor x = ops.constant(values(b * in, seed), Shape.of(b, in));
        return cell.step(ops, x, cell.initialState(ops, b)).next();
    }

    public static void shapesAndArity(CellProvider p, int b, int t, int in, int h, Map<String, String> opt) {
        Cell cell = create(p, in, h, opt, 1);
        assertEquals(h, cell.outputSize(), "outputSize");
        try (Tape ops = Tape.on(REF, DType.F64, 0)) {
            State s0 = cell.initialState(ops, b);
            assertEquals(p.spec().stateArity(), s0.size(), p.id() + ": state arity differs from its spec");
            Step st = cell.step(ops, ops.constant(values(b * in, 2), Shape.of(b, in)), s0);
            assertEquals(Shape.of(b, h), st.out().shape(), p.id() + ": step output shape");
            assertEquals(s0.size(), st.next().size(), p.id() + ": step changed the state arity");
            Step seq = cell.sequence(ops, ops.constant(values(b * t * in, 3), Shape.of(b, t, in)), cell.initialState(ops, b));
            assertEquals(Shape.of(b, t, h), seq.out().shape(), p.id() + ": sequence output shape");
        }
    }

    public static void stateIsThreaded(CellProvider p, int b, int in, int h, Map<String, String> opt) {
        Cell cell = create(p, in, h, opt, 1);
        try (Tape ops = Tape.on(REF, DType.F64, 0)) {
            Tensor x = ops.constant(values(b * in, 5), Shape.of(b, in));
            double[] fromInitial = cell.step(ops, x, cell.initialState(ops, b)).out().toDoubles();
            double[] fromWarm = cell.step(ops, x, warmState(ops, cell, b, in, 6)).out().toDoubles();
            assertFalse(java.util.Arrays.equals(fromInitial, fromWarm), p.id() + ": the state has no effect on the output");
        }
    }

    public static void deterministicUnderSeed(CellProvider p, int b, int t, int in, int h, Map<String, String> opt) {
        double[][] outs = new double[2][];
        for (int r = 0; r < 2; r++) {
            Cell cell = create(p, in, h, opt, 7);
            try (Tape ops = Tape.on(REF, DType.F64, 0)) {
                outs[r] = cell.sequence(ops, ops.constant(values(b * t * in, 8), Shape.of(b, t, in)), cell.initialState(ops, b))
                        .out().toDoubles();
            }
        }
        assertArrayEquals(outs[0], outs[1], 0.0, p.id() + ": same seed, different outputs");
    }

    /** Stepping one token at a time gives the outputs and final state of the window path. */
    public static void stepEqualsSequence(CellProvider p, int b, int t, int in, int h, Map<String, String> opt) {
        Cell cell = create(p, in, h, opt, 3);
        try (Tape ops = Tape.on(REF, DType.F64, 0)) {
            Tensor xs = ops.constant(values(b * t * in, 9), Shape.of(b, t, in));
            Step seq = cell.sequence(ops, xs, cell.initialState(ops, b));
            State s = cell.initialState(ops, b);
            List<Tensor> outs = new ArrayList<>();
            for (int i = 0; i < t; i++) {
                Step st = cell.step(ops, ops.reshape(ops.slice(xs, 1, i, i + 1), b, in), s);
                outs.add(st.out());
                s = st.next();
            }
            assertArrayEquals(seq.out().toDoubles(), ops.stack(1, outs).toDoubles(), 1e-10, p.id() + ": step-by-step differs from sequence");
            assertEquals(seq.next().size(), s.size(), p.id() + ": final state arity differs between step and sequence");
            for (int i = 0; i < s.size(); i++) {
                assertEquals(seq.next().get(i).shape(), s.get(i).shape(), p.id() + ": final state " + i + " shape");
                assertArrayEquals(seq.next().get(i).toDoubles(), s.get(i).toDoubles(), 1e-10, p.id() + ": final state " + i + " differs");
            }
        }
    }

    /** Values survive a save/load by name; names are unique and stable across creations. */
    public static void paramsRoundTrip(CellProvider p, int b, int in, int h, Map<String, String> opt) {
        Cell a = create(p, in, h, opt, 11);
        Cell c = create(p, in, h, opt, 12);
        List<String> names = a.params().stream().map(Param::name).toList();
        assertEquals(names, c.params().stream().map(Param::name).toList(), p.id() + ": param names or order not stable");
        assertEquals(names.size(), new HashSet<>(names).size(), p.id() + ": duplicate param names " + names);
        assertFalse(names.isEmpty(), p.id() + ": a cell with no params");
        for (int i = 0; i < names.size(); i++) {
            c.params().get(i).load(a.params().get(i).toDoubles());
        }
        try (Tape ops = Tape.on(REF, DType.F64, 0)) {
            Tensor x = ops.constant(values(b * in, 13), Shape.of(b, in));
            assertArrayEquals(a.step(ops, x, a.initialState(ops, b)).out().toDoubles(),
                    c.step(ops, x, c.initialState(ops, b)).out().toDoubles(), 0.0, p.id() + ": loaded params differ");
        }
    }

    /** GradCheck of every param and the input over a window from the initial state. */
    public static GradCheck.Report gradcheckSequence(CellProvider p, int b, int t, int in, int h, Map<String, String> opt, long seed) {
        Cell cell = create(p, in, h, opt, seed);
        return GradCheck.withDefaults().check(REF, cell.params(),
                List.of(GradCheck.Input.of("xs", Shape.of(b, t, in), values(b * t * in, seed + 1))),
                (ops, xs) -> cell.sequence(ops, xs.get(0), cell.initialState(ops, b)).out());
    }

    /** GradCheck of every param, the input and every state tensor over one step from a warm state. */
    public static GradCheck.Report gradcheckStep(CellProvider p, int b, int in, int h, Map<String, String> opt, long seed) {
        Cell cell = create(p, in, h, opt, seed);
        List<GradCheck.Input> inputs = new ArrayList<>();
        inputs.add(GradCheck.Input.of("x", Shape.of(b, in), values(b * in, seed + 2)));
        try (Tape ops = Tape.on(REF, DType.F64, 0)) {
            State warm = warmState(ops, cell, b, in, seed + 3);
            for (int i = 0; i < warm.size(); i++) {
                inputs.add(GradCheck.Input.of("state" + i, warm.get(i).shape(), warm.get(i).toDoubles()));
            }
        }
        return GradCheck.withDefaults().check(REF, cell.params(), inputs, (ops, ins) -> {
            State s = new State(ins.subList(1, ins.size()));
            Step st = cell.step(ops, ins.get(0), s);
            return st.out();
        });
    }

    public static void assertPasses(GradCheck.Report r, String what) {
        assertTrue(r.passed(), what + ": " + r.summary());
    }
}
