package dev.cellar.text;

import dev.cellar.api.Param;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Data-parallel steps ({@link TrainStep} on a backend with replicas) against one tape: the same loss, gradients and
 * carried state up to float rounding, and a state handed over through {@link TrainStep#state()} continues exactly.
 */
class TrainStepTest {
    /** Two threads whatever the machine has: two replicas. */
    private static final Backend TWO = open(2);
    /** One thread: no replicas, one tape, as before data parallelism. */
    private static final Backend ONE = open(1);
    private static final int BATCH = 20; // 10 rows per replica; an even split is not assumed below
    private static final int SEQ = 12;

    private static Backend open(int threads) {
        return Backends.select(Backends.discover(TrainStepTest.class.getClassLoader()), "cpu", null)
                .open(new BackendConfig(threads, null, Map.of()));
    }

    @AfterAll
    static void close() {
        TWO.close();
        ONE.close();
    }

    private static int[][] windows(int vocab, int n) {
        SplittableRandom r = new SplittableRandom(7);
        int[][] w = new int[n][];
        for (int i = 0; i < n; i++) {
            w[i] = r.ints((long) BATCH * SEQ, 0, vocab).toArray();
        }
        return w;
    }

    private static double[] grad(Param p) {
        return p.grad().toDoubles();
    }

    @ParameterizedTest
    @ValueSource(strings = {"lstm", "gru", "rnn", "transformer"})
    void replicasGiveOneTapesLossGradientsAndStateOverTwoWindows(String cell) {
        Tokenizer tok = CharTokenizer.fit(Fixtures.corpus());
        LanguageModel split = Fixtures.model(cell, tok, 16, 3, TWO);
        LanguageModel whole = Fixtures.model(cell, tok, 16, 3, ONE);
        TrainStep a = new TrainStep(split, TWO, BATCH, SEQ), b = new TrainStep(whole, ONE, BATCH, SEQ);
        assertEquals(2, a.parts());
        assertEquals(1, b.parts());
        int[][] w = windows(tok.vocabSize(), 3);
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
    void smallBatchesStayOnOneTape() {
        Tokenizer tok = CharTokenizer.fit(Fixtures.corpus());
        LanguageModel m = Fixtures.model("gru", tok, 8, 3, TWO);
        assertEquals(1, new TrainStep(m, TWO, 2 * TrainStep.MIN_ROWS - 1, SEQ).parts());
        assertEquals(2, new TrainStep(m, TWO, 2 * TrainStep.MIN_ROWS, SEQ).parts());
        assertEquals(1, new TrainStep(m, ONE, 64, SEQ).parts(), "one thread: no replicas");
    }
}
