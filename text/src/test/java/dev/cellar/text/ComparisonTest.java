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
        return settings(cells, out, 0.01, 1, 0);
    }

    private static Comparison.Settings settings(List<String> cells, Path out, double lr, int epochs, double budgetSeconds) {
        return new Comparison.Settings(cells, 1, 8, 0, Map.of("heads", "2"),
                new Trainer.Config(4, 12, lr, epochs, 0, budgetSeconds, 3, 10, 0, out), 10, 0.8);
    }

    /** A comparison over the first 90% / last 10% of the tokenizer's ids of text. */
    private static Comparison comparison(Tokenizer tok, String text) {
        int[][] split = Corpus.split(tok.encode(text), 0.9);
        return new Comparison(Fixtures.CELLS, Fixtures.REF, tok, split[0], split[1]);
    }

    @Test
    void trainsEachCellIntoItsOwnRunWithTheSameSettings(@TempDir Path dir) {
        String text = "To be or not to be\n" + Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        Comparison cmp = comparison(tok, text);
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
        Comparison cmp = comparison(tok, text);
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
        assertTrue(Files.notExists(dir.resolve("gru").resolve(Comparison.RESULT)), "a stopped model has no result yet");
    }

    @Test
    void aFinishedModelIsTakenFromItsResultEvenWithoutItsCheckpoint(@TempDir Path dir) throws Exception {
        String text = "To be or not to be\n" + Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        Comparison.Settings s = settings(List.of("rnn"), dir);
        Comparison first = comparison(tok, text);
        Comparison.Entry want = first.run(s, first.models(s), (index, count, m, runDir) -> null).get(0);
        assertTrue(Files.exists(dir.resolve("rnn").resolve(Comparison.RESULT)));
        Files.delete(dir.resolve("rnn/last.safetensors")); // as when only the small files of a run were kept
        Files.delete(dir.resolve("rnn/best.safetensors"));

        Comparison second = comparison(tok, text);
        List<String> reused = new ArrayList<>();
        Comparison.Entry got = second.run(s, second.models(s), new Comparison.Listener() {
            @Override
            public TrainListener begin(int index, int count, LanguageModel m, Path runDir) {
                throw new AssertionError("a finished model is not trained again");
            }

            @Override
            public void reused(int index, int count, Comparison.Entry e) {
                reused.add(index + "/" + count + " " + e.cell());
            }
        }, true).get(0);
        assertEquals(List.of("0/1 rnn"), reused);
        assertEquals(want.cell(), got.cell());
        assertEquals(want.parameters(), got.parameters());
        assertEquals(want.summary().steps(), got.summary().steps());
        assertEquals(want.summary().tokens(), got.summary().tokens());
        assertEquals(want.summary().lastLoss(), got.summary().lastLoss(), 0.0);
        assertEquals(want.epochs(), got.epochs(), 0.0);
        assertEquals(want.wallSeconds(), got.wallSeconds(), 0.0);
        assertEquals(want.tokensPerSecond(), got.tokensPerSecond(), 0.0);
        assertEquals(want.validation(), got.validation());
        assertEquals(want.perplexityPerWord(), got.perplexityPerWord(), 0.0);
        assertEquals(want.sample(), got.sample());
        assertEquals(want.curve(), got.curve());

        Comparison.Settings longer = settings(List.of("rnn"), dir, 0.01, 2, 0);
        Comparison third = comparison(tok, text);
        String msg = assertThrows(dev.cellar.api.CellarException.class,
                () -> third.checkResumable(longer, third.models(longer))).getMessage();
        assertTrue(msg.contains(Comparison.RESULT) && msg.contains("other settings") && msg.contains("--force"), msg);
    }

    @Test
    void aFinishedModelResumedWithAnotherLearningRateIsAnError(@TempDir Path dir) throws Exception {
        String text = Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        Comparison.Settings s = settings(List.of("rnn"), dir);
        Comparison first = comparison(tok, text);
        first.run(s, first.models(s), (index, count, m, runDir) -> null);
        String before = Files.readString(dir.resolve("rnn").resolve(Comparison.RESULT));
        Comparison.Settings faster = settings(List.of("rnn"), dir, 0.05, 1, 0);
        Comparison second = comparison(tok, text);
        String msg = assertThrows(dev.cellar.api.CellarException.class,
                () -> second.run(faster, second.models(faster), (index, count, m, runDir) -> null, true)).getMessage();
        assertTrue(msg.contains("lr 0.01 there, 0.05 here"), msg);
        assertEquals(before, Files.readString(dir.resolve("rnn").resolve(Comparison.RESULT)), "the result is kept");
    }

    @Test
    void aModelThatSpentItsTimeBudgetHasFinished(@TempDir Path dir) {
        String text = Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        Comparison.Settings s = settings(List.of("rnn"), dir, 0.01, 1000, 1e-9);
        Comparison cmp = comparison(tok, text);
        Comparison.Entry e = cmp.run(s, cmp.models(s), (index, count, m, runDir) -> null).get(0);
        assertTrue(e.summary().stoppedEarly() && e.summary().steps() < 1000, "the budget ended it: " + e.summary());
        assertTrue(Files.exists(dir.resolve("rnn").resolve(Comparison.RESULT)), "a spent budget is a finished model");
    }

    @Test
    void aStoppedComparisonResumedEndsExactlyAsAnUninterruptedOne(@TempDir Path dir) throws Exception {
        String text = Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        Comparison.Settings whole = settings(List.of("gru", "lstm"), dir.resolve("whole"));
        Comparison straight = comparison(tok, text);
        List<Comparison.Entry> want = straight.run(whole, straight.models(whole), (index, count, m, runDir) -> null);

        Comparison.Settings parts = settings(List.of("gru", "lstm"), dir.resolve("parts"));
        Comparison first = comparison(tok, text);
        first.run(parts, first.models(parts), (index, count, m, runDir) -> new TrainListener() {
            @Override
            public void onStep(long step, int epoch, double loss, double tps) {
                if (step == 13) {
                    first.requestStop();
                }
            }
        });
        Comparison second = comparison(tok, text);
        List<Long> resumedAt = new ArrayList<>();
        List<Comparison.Entry> got = second.run(parts, second.models(parts), (index, count, m, runDir) -> new TrainListener() {
            @Override
            public void onStart(long totalSteps, int windowsPerEpoch, long params, long resumedStep) {
                resumedAt.add(resumedStep);
            }
        }, true);

        assertEquals(List.of(13L, 0L), resumedAt, "gru continues from its checkpoint, lstm starts");
        assertEquals(2, got.size());
        for (int i = 0; i < 2; i++) {
            Comparison.Entry w = want.get(i), g = got.get(i);
            assertEquals(w.summary().steps(), g.summary().steps());
            assertEquals(w.summary().tokens(), g.summary().tokens());
            assertEquals(w.summary().lastLoss(), g.summary().lastLoss(), 0.0, g.cell() + ": the same steps on the same data");
            assertEquals(w.validation().natsPerToken(), g.validation().natsPerToken(), 0.0, g.cell());
            assertEquals(w.sample(), g.sample(), g.cell());
        }
        List<Long> wantSteps = want.get(0).curve().stream().map(Comparison.Point::step).toList();
        List<Long> gotSteps = got.get(0).curve().stream().map(Comparison.Point::step).toList();
        List<Long> expected = new ArrayList<>(wantSteps.subList(0, 1)); // step 10, then the stop's validation at 13
        expected.add(13L);
        expected.addAll(wantSteps.subList(1, wantSteps.size()));
        assertEquals(expected, gotSteps, "the curve keeps the points from before the stop");
        List<Comparison.Point> c = got.get(0).curve();
        for (int i = 1; i < c.size(); i++) {
            assertTrue(c.get(i).wallSeconds() > c.get(i - 1).wallSeconds(), "wall-clock time runs on across the resume: " + c);
        }
        assertTrue(got.get(0).wallSeconds() >= c.get(c.size() - 1).wallSeconds());
        assertEquals(gotSteps.size(), Files.readAllLines(dir.resolve("parts/gru").resolve(Comparison.CURVE)).stream()
                .filter(l -> l.contains("val_loss")).count(), "curve.jsonl holds every point once");
    }

    @Test
    void resumingWithOtherSettingsIsAnErrorAndKeepsTheCheckpoint(@TempDir Path dir) throws Exception {
        String text = Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        Comparison.Settings s = settings(List.of("rnn"), dir);
        Comparison first = comparison(tok, text);
        first.run(s, first.models(s), (index, count, m, runDir) -> null);
        byte[] saved = Files.readAllBytes(dir.resolve("rnn/last.safetensors"));
        Comparison.Settings wider = new Comparison.Settings(List.of("rnn"), 1, 16, 0, Map.of(), s.training(), 10, 0.8);
        Comparison second = comparison(tok, text);
        String msg = assertThrows(dev.cellar.api.CellarException.class,
                () -> second.run(wider, second.models(wider), (index, count, m, runDir) -> null, true)).getMessage();
        assertTrue(msg.contains("rnn 1x8") && msg.contains("rnn 1x16") && msg.contains("--force"), msg);
        assertTrue(java.util.Arrays.equals(saved, Files.readAllBytes(dir.resolve("rnn/last.safetensors"))));
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
