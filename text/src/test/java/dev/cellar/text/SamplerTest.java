package dev.cellar.text;

import dev.cellar.api.CellarException;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
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

    @Test
    void transformerGeneratesPastItsContext() {
        LanguageModel m = Fixtures.model("transformer", TOK, 8, 2); // context 16
        assertEquals(50, Sampler.generate(m, Fixtures.REF, "to be or not", new Sampler.Settings(50, 0, 0, 1, 1, 0), x -> { }).length());
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

    @Test
    void badSettingsAreRejected() {
        assertThrows(CellarException.class, () -> new Sampler.Settings(10, -1, 0, 1, 1, 0));
        assertThrows(CellarException.class, () -> new Sampler.Settings(10, 1, 0, 1.5, 1, 0));
    }
}
