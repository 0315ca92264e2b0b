package dev.cellar.text;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ComparisonTest {
    private static Comparison.Settings settings(List<String> cells, Path out) {
        return new Comparison.Settings(cells, 1, 8, 0, Map.of("heads", "2"),
                new Trainer.Config(4, 12, 0.01, 1, 0, 0, 3, 10, 0, out), 10, 0.8);
    }

    @Test
    void trainsEachCellIntoItsOwnRunWithTheSameSettings(@TempDir Path dir) {
        String text = "To be or not to be\n" + Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        int[][] split = Corpus.split(tok.encode(text), 0.9);
        Comparison cmp = new Comparison(Fixtures.CELLS, Fixtures.REF, tok, split[0], split[1]);
        Comparison.Settings s = settings(List.of("rnn", "transformer"), dir);
        List<LanguageModel> models = cmp.models(s);
        assertEquals("12", models.get(1).config().cellOptions().get("context"), "the transformer's context is the window");
        assertEquals("2", models.get(1).config().cellOptions().get("heads"));
        assertTrue(models.get(0).config().cellOptions().isEmpty(), "options go only to cells that declare them");
        List<String> events = new ArrayList<>();
        List<Comparison.Entry> es = cmp.run(s, models, new Comparison.Listener() {
            @Override
            public TrainListener begin(int index, int count, LanguageModel m, Path runDir) {
                events.add("begin " + index + "/" + count + " " + runDir.getFileName());
                return null;
            }

            @Override
            public void end(Comparison.Entry e) {
                events.add("end " + e.cell());
            }
        });
        assertEquals(List.of("begin 0/2 rnn", "end rnn", "begin 1/2 transformer", "end transformer"), events);
        double wpt = cmp.wordsPerToken();
        for (Comparison.Entry e : es) {
            assertEquals(dir.resolve(e.cell()), e.runDir());
            assertTrue(Files.exists(e.runDir().resolve("last.safetensors")));
            assertEquals(1.0, e.epochs(), 1e-12);
            assertEquals(es.get(0).summary().steps(), e.summary().steps());
            assertEquals(Math.exp(e.validation().natsPerToken() / wpt), e.perplexityPerWord(), 1e-9);
            assertTrue(e.sample().startsWith(Comparison.PROMPT) && e.sample().length() > Comparison.PROMPT.length(), e.sample());
            assertNull(e.sampleNote());
            long evals = e.summary().steps() / 10 + (e.summary().steps() % 10 == 0 ? 0 : 1);
            assertEquals(evals, e.curve().size(), "a point every 10 steps and at the end");
            assertEquals(e.validation().natsPerToken(), e.curve().get(e.curve().size() - 1).valLoss());
        }
        assertTrue(wpt > 0.1 && wpt < 0.5, "words per character " + wpt);
    }

    @Test
    void aStopEndsTheModelInTrainingAndSkipsTheRest(@TempDir Path dir) {
        String text = Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        int[][] split = Corpus.split(tok.encode(text), 0.9);
        Comparison cmp = new Comparison(Fixtures.CELLS, Fixtures.REF, tok, split[0], split[1]);
        Comparison.Settings s = settings(List.of("gru", "lstm"), dir);
        List<Comparison.Entry> es = cmp.run(s, cmp.models(s), (index, count, m, runDir) -> new TrainListener() {
            @Override
            public void onStep(long step, int epoch, double loss, double tps) {
                if (step == 3) {
                    cmp.requestStop();
                }
            }
        });
        assertEquals(1, es.size());
        assertEquals(3, es.get(0).summary().steps());
        assertTrue(es.get(0).summary().stoppedEarly());
        assertTrue(es.get(0).sampleNote().startsWith("no sample"), "the corpus has no 'T': " + es.get(0).sampleNote());
        assertNull(es.get(0).sample());
        assertTrue(Files.notExists(dir.resolve("lstm")));
    }

    @Test
    void anUnknownCellFailsBeforeTraining(@TempDir Path dir) {
        Tokenizer tok = CharTokenizer.fit(Fixtures.corpus());
        int[] ids = tok.encode(Fixtures.corpus());
        Comparison cmp = new Comparison(Fixtures.CELLS, Fixtures.REF, tok, ids, ids);
        assertTrue(assertThrows(dev.cellar.api.CellarException.class, () -> cmp.models(settings(List.of("gru", "lstn"), dir)))
                .getMessage().contains("unknown cell 'lstn'"));
    }
}
