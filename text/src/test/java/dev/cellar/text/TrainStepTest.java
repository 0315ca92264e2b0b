package dev.cellar.text;

import dev.cellar.api.DType;
import dev.cellar.api.Init;
import dev.cellar.api.Ops;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.ShapeException;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.Cell;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.CellSpec;
import dev.cellar.api.spi.ParamInit;
import dev.cellar.api.spi.State;
import dev.cellar.api.spi.Step;
import dev.cellar.autodiff.Params;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Data-parallel steps ({@link TrainStep} on a backend with replicas) against one tape: the same loss, gradients and
 * carried state up to float rounding, and a state handed over through {@link TrainStep#state()} continues exactly.
 */
class TrainStepTest {
    /** Two threads whatever the machine has: two replicas. */
    private static final Backend TWO = open(2);
    /** Three: batch 20 takes two of them (8 rows at least each), batch 25 all three, unevenly (8, 8, 9). */
    private static final Backend THREE = open(3);
    /** One thread: no replicas, one tape, as before data parallelism. */
    private static final Backend ONE = open(1);
    private static final int BATCH = 20;
    private static final int SEQ = 12;
    /** Wide enough that the recurrent weights (4H x H for the LSTM) are packed and cached per replica. */
    private static final int HIDDEN = 48;

    private static Backend open(int threads) {
        return Backends.select(Backends.discover(TrainStepTest.class.getClassLoader()), "cpu", null)
                .open(new BackendConfig(threads, null, Map.of()));
    }

    @AfterAll
    static void close() {
        TWO.close();
        THREE.close();
        ONE.close();
    }

    private static int[][] windows(int vocab, int n) {
        return windows(vocab, n, BATCH);
    }

    private static int[][] windows(int vocab, int n, int batch) {
        SplittableRandom r = new SplittableRandom(7);
        int[][] w = new int[n][];
        for (int i = 0; i < n; i++) {
            w[i] = r.ints((long) batch * SEQ, 0, vocab).toArray();
        }
        return w;
    }

    private static double[] grad(Param p) {
        return p.grad().toDoubles();
    }

    @ParameterizedTest(name = "{0} on {1} threads, batch {2}: {3} parts")
    @CsvSource({"lstm, 2, 20, 2", "gru, 2, 20, 2", "rnn, 2, 20, 2", "transformer, 2, 20, 2", "lstm, 3, 20, 2", "gru, 3, 25, 3",
            "transformer, 3, 25, 3"})
    void replicasGiveOneTapesLossGradientsAndStateOverTwoWindows(String cell, int threads, int batch, int parts) {
        Backend be = threads == 2 ? TWO : THREE;
        Tokenizer tok = CharTokenizer.fit(Fixtures.corpus());
        LanguageModel split = Fixtures.model(cell, tok, HIDDEN, 3, be);
        LanguageModel whole = Fixtures.model(cell, tok, HIDDEN, 3, ONE);
        TrainStep a = new TrainStep(split, be, batch, SEQ), b = new TrainStep(whole, ONE, batch, SEQ);
        assertEquals(parts, a.parts());
        assertEquals(1, b.parts());
        int[][] w = windows(tok.vocabSize(), 3, batch);
        for (int step = 0; step < 2; step++) { // the second window starts from each part's carried state
            double la = a.run(w[step], w[step + 1], 0), lb = b.run(w[step], w[step + 1], 0);
            assertEquals(lb, la, 1e-5 * Math.abs(lb), cell + " loss at window " + step);
            for (int i = 0; i < split.params().size(); i++) {
                Param ps = split.params().get(i), pw = whole.params().get(i);
                double[] gs = grad(ps), gw = grad(pw);
                double scale = 0;
                for (double g : gw) {
                    scale = Math.max(scale, Math.abs(g));
                }
                assertTrue(scale > 0, cell + " " + pw.name() + " has no gradient to compare");
                for (int j = 0; j < gw.length; j++) {
                    assertEquals(gw[j], gs[j], 1e-4 * scale, cell + " " + pw.name() + "[" + j + "] at window " + step);
                }
                ps.zeroGrad();
                pw.zeroGrad();
            }
            Map<String, double[]> sa = a.state(), sb = b.state();
            assertEquals(sb.keySet(), sa.keySet());
            assertTrue(!sb.isEmpty());
            for (String k : sb.keySet()) {
                assertEquals(sb.get(k).length, sa.get(k).length, k);
                for (int j = 0; j < sb.get(k).length; j++) {
                    assertEquals(sb.get(k)[j], sa.get(k)[j], 1e-5, cell + " " + k + "[" + j + "]");
                }
            }
        }
        // evaluation from the carried state: the same loss, no gradient
        double ea = a.evaluate(w[2], w[0]), eb = b.evaluate(w[2], w[0]);
        assertEquals(eb, ea, 1e-5 * Math.abs(eb), cell + " evaluation loss");
        for (List<Param> ps : List.of(split.params(), whole.params())) {
            for (Param p : ps) {
                assertEquals(null, p.grad(), "evaluation left a gradient in " + p.name());
            }
        }
    }

    /** Evaluation runs without dropout on every replica: a model with dropout evaluates as on one tape. */
    @Test
    void evaluationOfAModelWithDropoutMatchesOneTape() {
        Tokenizer tok = CharTokenizer.fit(Fixtures.corpus());
        int[][] w = windows(tok.vocabSize(), 2);
        double[] loss = new double[2];
        Backend[] bes = {TWO, ONE};
        for (int i = 0; i < 2; i++) {
            LanguageModel m = new LanguageModel(new ModelConfig("lstm", 2, HIDDEN, Map.of(), 0.5), tok, Fixtures.CELLS.get("lstm"),
                    Params.creator(bes[i], DType.F32, new SplittableRandom(3)));
            loss[i] = new TrainStep(m, bes[i], BATCH, SEQ).evaluate(w[0], w[1]);
        }
        assertEquals(loss[1], loss[0], 1e-5 * loss[1]);
    }

    /**
     * Windows after the first replay the first's kernel calls ({@link dev.cellar.autodiff.KernelGraph}): the same
     * losses, gradients and state as tapes, bit for bit, across optimizer steps, a reset and a restored state.
     */
    @ParameterizedTest(name = "{0} on {1} thread(s)")
    @CsvSource({"lstm, 2", "gru, 2", "rnn, 2", "transformer, 2", "lstm, 1", "transformer, 1", "gru, 3"})
    void replayedWindowsEqualTapesBitForBit(String cell, int threads) {
        Backend be = threads == 1 ? ONE : threads == 2 ? TWO : THREE;
        int batch = threads == 3 ? 25 : BATCH;
        Tokenizer tok = CharTokenizer.fit(Fixtures.corpus());
        LanguageModel mg = Fixtures.model(cell, tok, 16, 3, be), mt = Fixtures.model(cell, tok, 16, 3, be);
        TrainStep graphs = new TrainStep(mg, be, batch, SEQ, true), tapes = new TrainStep(mt, be, batch, SEQ, false);
        var og = dev.cellar.autodiff.Optimizers.adam(mg.params(), 0.01);
        var ot = dev.cellar.autodiff.Optimizers.adam(mt.params(), 0.01);
        int[][] w = windows(tok.vocabSize(), 7, batch);
        for (int step = 0; step < 6; step++) {
            if (step == 3) { // a new epoch: both start from zeros
                graphs.reset();
                tapes.reset();
            }
            if (step == 5) { // a resumed checkpoint's state
                Map<String, double[]> st = tapes.state();
                graphs.restore(st);
                tapes.restore(st);
            }
            assertEquals(tapes.run(w[step], w[step + 1], 0), graphs.run(w[step], w[step + 1], 0), cell + " loss at window " + step);
            assertTrue(graphs.replaying(), "window " + step + " ran on the captured graph");
            for (int i = 0; i < mg.params().size(); i++) {
                assertArrayEquals(mt.params().get(i).grad().toFloats(), mg.params().get(i).grad().toFloats(),
                        cell + " " + mt.params().get(i).name() + " at window " + step);
            }
            Map<String, double[]> sg = graphs.state(), sv = tapes.state();
            assertEquals(sv.keySet(), sg.keySet());
            for (String k : sv.keySet()) {
                assertArrayEquals(sv.get(k), sg.get(k), cell + " " + k + " at window " + step);
            }
            og.step();
            og.zeroGrad();
            ot.step();
            ot.zeroGrad();
        }
        for (int i = 0; i < 3; i++) { // recorded anew as an evaluation window, then replayed, from the carried state
            assertEquals(tapes.evaluate(w[i], w[i + 1]), graphs.evaluate(w[i], w[i + 1]), cell + " evaluation " + i);
            assertTrue(graphs.replaying());
        }
        for (Param p : mg.params()) {
            assertEquals(null, p.grad(), "evaluation left a gradient in " + p.name());
        }
        assertEquals(tapes.run(w[3], w[4], 0), graphs.run(w[3], w[4], 0), cell + " training again after evaluation");
        Map<String, double[]> sg = graphs.state(), sv = tapes.state();
        graphs.close();
        assertEquals(sv.keySet(), graphs.state().keySet(), "a closed step keeps its state as values");
        for (String k : sv.keySet()) {
            assertArrayEquals(sg.get(k), graphs.state().get(k), k);
        }
        assertTrue(!graphs.replaying());
    }

    @Test
    void aStateHandedOverContinuesBitForBit() {
        Tokenizer tok = CharTokenizer.fit(Fixtures.corpus());
        int[][] w = windows(tok.vocabSize(), 3);
        LanguageModel m1 = Fixtures.model("lstm", tok, 16, 3, TWO), m2 = Fixtures.model("lstm", tok, 16, 3, TWO);
        TrainStep straight = new TrainStep(m1, TWO, BATCH, SEQ), first = new TrainStep(m2, TWO, BATCH, SEQ);
        straight.run(w[0], w[1], 0);
        first.run(w[0], w[1], 0);
        TrainStep resumed = new TrainStep(m2, TWO, BATCH, SEQ); // as a resumed checkpoint does
        resumed.restore(first.state());
        assertEquals(straight.run(w[1], w[2], 1), resumed.run(w[1], w[2], 1));
        for (int i = 0; i < m1.params().size(); i++) {
            assertArrayEquals(m1.params().get(i).grad().toFloats(), m2.params().get(i).grad().toFloats(), m1.params().get(i).name());
        }
        straight.reset();
        assertTrue(straight.state().isEmpty(), "a reset forgets the carried state");
    }

    @Test
    void aWindowOfTheWrongSizeIsRefusedBeforeAnythingRuns() {
        Tokenizer tok = CharTokenizer.fit(Fixtures.corpus());
        TrainStep s = new TrainStep(Fixtures.model("rnn", tok, 8, 3, TWO), TWO, BATCH, SEQ);
        int[] ok = new int[BATCH * SEQ], shorter = new int[BATCH * SEQ - 1];
        ShapeException e = assertThrows(ShapeException.class, () -> s.run(shorter, ok, 0));
        assertTrue(e.getMessage().contains("needs 240 ids and targets, got 239 and 240"), e.getMessage());
        assertTrue(s.state().isEmpty());
    }

    /**
     * A cell whose state is one vector for the whole batch (not batch-first) cannot be cut by rows: it trains on one
     * tape, and the one tape's loss is what the replicas' backend computes for it.
     */
    @Test
    void aCellWhoseStateIsNotBatchFirstStaysOnOneTape() {
        CellProvider shared = new CellProvider() {
            public String id() {
                return "shared-state";
            }

            public CellSpec spec() {
                return new CellSpec("h = tanh(W x + mean over the batch of the last h)", List.of(), 1, List.of(), "1");
            }

            public Cell create(CellConfig c, ParamInit init) {
                int h = c.hiddenSize();
                Param w = init.param("weight_ih", Shape.of(h, c.inputSize()), Init.uniform(0.3));
                return new Cell() {
                    public List<Param> params() {
                        return List.of(w);
                    }

                    public int outputSize() {
                        return h;
                    }

                    public State initialState(Ops ops, int batch) {
                        return State.of(ops.zeros(Shape.of(h)));
                    }

                    public Step step(Ops ops, Tensor x, State st) {
                        Tensor y = ops.tanh(ops.add(ops.linear(x, w, null), st.get(0)));
                        return new Step(y, State.of(ops.mean(y, 0, false)));
                    }
                };
            }
        };
        Tokenizer tok = CharTokenizer.fit(Fixtures.corpus());
        int[][] w = windows(tok.vocabSize(), 2);
        double[] loss = new double[2];
        Backend[] bes = {TWO, ONE};
        for (int i = 0; i < 2; i++) {
            LanguageModel m = new LanguageModel(new ModelConfig("shared-state", 1, 8, Map.of(), 0), tok, shared,
                    Params.creator(bes[i], DType.F32, new SplittableRandom(3)));
            TrainStep step = new TrainStep(m, bes[i], BATCH, SEQ);
            assertEquals(1, step.parts(), "a state without the batch first is not cut");
            loss[i] = step.run(w[0], w[1], 0);
        }
        assertEquals(loss[1], loss[0], 1e-6 * loss[1]);
    }

    @Test
    void smallBatchesStayOnOneTape() {
        Tokenizer tok = CharTokenizer.fit(Fixtures.corpus());
        LanguageModel m = Fixtures.model("gru", tok, 8, 3, TWO);
        assertEquals(1, new TrainStep(m, TWO, 2 * TrainStep.MIN_ROWS - 1, SEQ).parts());
        assertEquals(2, new TrainStep(m, TWO, 2 * TrainStep.MIN_ROWS, SEQ).parts());
        assertEquals(1, new TrainStep(m, ONE, 64, SEQ).parts(), "one thread: no replicas");
    }
}
