package dev.cellar.text;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.autodiff.Tape;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SamplerTest {
    private static final Tokenizer TOK = CharTokenizer.fit(Fixtures.corpus());

    @Test
    void sameSeedSameTextAndStreamingMatchesTheResult() {
        for (String cell : new String[]{"lstm", "transformer"}) {
            LanguageModel m = Fixtures.model(cell, TOK, 8, 2);
            StringBuilder streamed = new StringBuilder();
            String a = Sampler.generate(m, Fixtures.REF, "to be", new Sampler.Settings(40, 1.0, 0, 1.0, 7, 0), streamed::append);
            String b = Sampler.generate(m, Fixtures.REF, "to be", new Sampler.Settings(40, 1.0, 0, 1.0, 7, 0), x -> { });
            String c = Sampler.generate(m, Fixtures.REF, "to be", new Sampler.Settings(40, 1.0, 0, 1.0, 8, 0), x -> { });
            assertEquals(a, b);
            assertEquals(a, streamed.toString());
            assertEquals(40, a.length());
            assertNotEquals(a, c);
        }
    }

    /**
     * Recurrent models feed their tokens by replaying the first step's kernel calls, in a frozen graph whose first
     * layer gathers its input projection from a table: the text equals the tapes' at every cell, on the cpu backend
     * (one replica's kernels) and on cpu-reference, at 24 wide and, for the LSTM, 160.
     */
    @Test
    void replayedFeedingGeneratesWhatTapesGenerate() {
        record Case(String cell, int hidden) {
        }
        try (Backend two = open(2)) {
            for (Backend be : List.of(two, Fixtures.REF)) {
                // 160 wide: the table's product over k = 160 runs in two k-blocks (128 + 32) on cpu
                for (Case c : List.of(new Case("lstm", 24), new Case("gru", 24), new Case("rnn", 24), new Case("layernorm-lstm", 24),
                        new Case("mingru", 24), new Case("transformer", 24), new Case("lstm", 160))) {
                    String cell = c.cell();
                    LanguageModel m = Fixtures.model(cell, TOK, c.hidden(), 2, be);
                    for (Sampler.Settings st : List.of(new Sampler.Settings(120, 1.0, 0, 1.0, 7, 0), new Sampler.Settings(60, 0, 0, 1, 1, 0))) {
                        assertEquals(Sampler.generate(m, be, "to be", st, x -> { }, false),
                                Sampler.generate(m, be, "to be", st, x -> { }, true), cell + " " + c.hidden() + " wide on " + be.id() + ", " + st);
                    }
                }
            }
        }
    }

    /**
     * On a backend with replicas generation computes on one replica's single-threaded kernels: sampled, greedy and
     * beam text equal what one thread, without replicas, generates from the same weights.
     */
    @Test
    void generationOnAReplicaMatchesOneThread() {
        try (Backend two = open(2); Backend one = open(1)) {
            assertTrue(two.replicas().isPresent());
            for (String cell : new String[]{"lstm", "transformer"}) {
                LanguageModel a = Fixtures.model(cell, TOK, 48, 2, two), b = Fixtures.model(cell, TOK, 48, 2, one);
                for (Sampler.Settings st : List.of(new Sampler.Settings(40, 1.0, 0, 1.0, 7, 0), new Sampler.Settings(30, 0, 0, 1, 1, 0),
                        new Sampler.Settings(20, 0, 0, 1, 1, 3))) {
                    assertEquals(Sampler.generate(b, one, "to be", st, x -> { }), Sampler.generate(a, two, "to be", st, x -> { }),
                            cell + " " + st);
                }
            }
        }
    }

    private static Backend open(int threads) {
        return Backends.select(Backends.discover(SamplerTest.class.getClassLoader()), "cpu", null)
                .open(new BackendConfig(threads, null, Map.of()));
    }

    @Test
    void transformerGeneratesPastItsContext() {
        LanguageModel m = Fixtures.model("transformer", TOK, 8, 2); // context 16
        assertEquals(50, Sampler.generate(m, Fixtures.REF, "to be or not", new Sampler.Settings(50, 0, 0, 1, 1, 0), x -> { }).length());
    }

    /**
     * Past its context the transformer generates what a fresh forward pass shows it: the window restarts context/2
     * tokens back each time it fills, and every layer, not only the bottom one, re-encodes from there.
     */
    @Test
    void transformerPastItsContextMatchesAForwardPassOverItsWindow() {
        LanguageModel m = Fixtures.model("transformer", TOK, 8, 2);
        int context = m.context(), keep = context / 2, length = 3 * context;
        assertEquals(16, context);
        String prompt = "to be or not";
        String got = Sampler.generate(m, Fixtures.REF, prompt, new Sampler.Settings(length, 0, 0, 1, 1, 0), x -> { });

        List<Integer> toks = new ArrayList<>();
        for (int id : TOK.encode(prompt)) {
            toks.add(id);
        }
        int n = toks.size();
        try (Tape tape = Tape.on(Fixtures.REF, DType.F32, 1)) {
            tape.setTraining(false);
            tape.noGrad(() -> {
                int start = 0;
                for (int p = 0; p < n + length - 1; p++) {
                    if (p - start >= context) {
                        start = p + 1 - keep;
                    }
                    if (p < n - 1) {
                        continue;
                    }
                    int[] window = toks.subList(start, p + 1).stream().mapToInt(Integer::intValue).toArray();
                    Tensor logits = m.forward(tape, tape.ids(window, Shape.of(1, window.length)),
                            m.initialState(tape, 1)).logits(); // (1, T, V)
                    toks.add(Sampler.pick(tape.slice(logits, 1, window.length - 1, window.length).toFloats(),
                            new Sampler.Settings(1, 0, 0, 1, 1, 0), new SplittableRandom(1)));
                }
                return null;
            });
        }
        int[] generated = toks.subList(n, toks.size()).stream().mapToInt(Integer::intValue).toArray();
        assertEquals(TOK.decode(generated), got);
    }

    /** A word model's text continues the prompt with the space its tokenizer puts between words. */
    @Test
    void wordModelsContinueThePromptAsTheTokenizerJoinsTokens() {
        WordTokenizer words = WordTokenizer.fit(Fixtures.corpus(), 50);
        LanguageModel m = Fixtures.model("lstm", words, 8, 2);
        String prompt = "to be or not to be";
        for (int beam : new int[]{0, 3}) {
            String got = Sampler.generate(m, Fixtures.REF, prompt, new Sampler.Settings(12, 0, 0, 1, 1, beam), x -> { });
            // a word or <unk> comes after a space; only punctuation and newlines attach to the prompt's last word
            assertFalse(Character.isLetterOrDigit(got.codePointAt(0)) || got.startsWith(WordTokenizer.UNK), "beam " + beam + ": " + got);
        }
        assertEquals(" be", Sampler.after(words, words.encode("to"), words.encode("be")));
        assertEquals(",", Sampler.after(words, words.encode("to"), words.encode(",")));
        assertEquals("b", Sampler.after(TOK, TOK.encode("to"), TOK.encode("b")));
    }

    @Test
    void greedyTopKTopPAndBeam() {
        float[] logits = {0f, 3f, 1f, 2.9f};
        SplittableRandom r = new SplittableRandom(1);
        assertEquals(1, Sampler.pick(logits, new Sampler.Settings(1, 0, 0, 1, 1, 0), r));
        for (int i = 0; i < 50; i++) {
            int k = Sampler.pick(logits, new Sampler.Settings(1, 1, 2, 1, 1, 0), r);
            assertTrue(k == 1 || k == 3, "top-2 picked " + k);
            assertEquals(1, Sampler.pick(logits, new Sampler.Settings(1, 1, 0, 0.01, 1, 0), r));
        }
        LanguageModel m = Fixtures.model("gru", TOK, 8, 2);
        String beam = Sampler.generate(m, Fixtures.REF, "the", new Sampler.Settings(12, 1, 0, 1, 1, 3), x -> { });
        assertEquals(12, beam.length());
    }

    /** The primitive sort orders ids as the boxed Comparator (p descending, then id) did, ties and odd sizes included. */
    @Test
    void byProbabilityOrdersAsTheComparatorDid() {
        SplittableRandom r = new SplittableRandom(11);
        for (int v : new int[] {1, 2, 3, 7, 64, 65, 100, 1000}) {
            double[] p = new double[v];
            for (int i = 0; i < v; i++) {
                p[i] = r.nextInt(5) == 0 ? 0.25 : r.nextDouble(); // a fifth tied at one value
            }
            if (v > 2) {
                p[v / 2] = Double.NaN; // NaN logits: ordered as the Comparator ordered them
            }
            Integer[] want = new Integer[v];
            for (int i = 0; i < v; i++) {
                want[i] = i;
            }
            java.util.Arrays.sort(want, java.util.Comparator.comparingDouble((Integer i) -> -p[i]).thenComparingInt(i -> i));
            int[] got = Sampler.byProbability(p);
            for (int i = 0; i < v; i++) {
                assertEquals(want[i].intValue(), got[i], "v = " + v + ", position " + i);
            }
        }
    }

    @Test
    void badSettingsAreRejected() {
        assertThrows(CellarException.class, () -> new Sampler.Settings(10, -1, 0, 1, 1, 0));
        assertThrows(CellarException.class, () -> new Sampler.Settings(10, 1, 0, 1.5, 1, 0));
    }
}
