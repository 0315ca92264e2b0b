package dev.cellar.text;

import dev.cellar.api.spi.Backend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static dev.cellar.text.Fixtures.CELLS;
import static dev.cellar.text.Fixtures.REF;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainingTest {
    private static Trainer.Config config(Path out, int epochs, long evalEvery) {
        return new Trainer.Config(4, 12, 0.01, epochs, 0, 0, 3, evalEvery, 0, out);
    }

    @Test
    void aTinyLstmLearnsARepetitiveText(@TempDir Path dir) throws Exception {
        String text = Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        int[][] split = Corpus.split(tok.encode(text), 0.9);
        LanguageModel m = Fixtures.model("lstm", tok, 16, 1);
        List<Double> losses = new ArrayList<>();
        Trainer tr = new Trainer(config(dir, 6, 0), m, REF, split[0], split[1], 1.0, new TrainListener() {
            @Override
            public void onStep(long step, int epoch, double loss, double tps) {
                losses.add(loss);
            }
        });
        Trainer.Summary s = tr.run();
        double first = losses.get(0), last = losses.get(losses.size() - 1);
        assertTrue(first > 2.5, "initial loss " + first); // about ln(vocab)
        assertTrue(last < first * 0.6, "loss went from " + first + " to " + last);
        assertTrue(s.validation().natsPerToken() < first, "validation " + s.validation());
        assertTrue(Files.size(dir.resolve("last.safetensors")) > 0);
        assertTrue(Files.readString(dir.resolve("metrics.jsonl")).contains("\"val_loss\""));
        // the checkpoint reloads into the same model
        Checkpoints.Loaded ck = Checkpoints.load(dir.resolve("last.safetensors"), CELLS, REF, dev.cellar.api.DType.F32);
        for (int i = 0; i < m.params().size(); i++) {
            assertArrayEquals(m.params().get(i).toFloats(), ck.model().params().get(i).toFloats());
        }
        assertEquals(s.steps(), ck.progress().step());
    }

    /**
     * Validating on the training text read backwards, which a model of the forward text learns ever worse, early
     * stopping ends the run exactly when {@code patience} validations in a row have not beaten the best one.
     */
    @Test
    void earlyStoppingEndsTheRunAfterPatienceValidationsWithoutImprovement(@TempDir Path dir) throws Exception {
        String text = Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        int[] train = tok.encode(text);
        int[] val = tok.encode(new StringBuilder(text).reverse().toString());
        LanguageModel m = Fixtures.model("lstm", tok, 16, 1);
        int patience = 3, evalEvery = 2, epochs = 200;
        Trainer.Config c = new Trainer.Config(4, 12, 0.03, epochs, 0, 0, 3, evalEvery, 0, dir, patience);
        Trainer.Summary s = new Trainer(c, m, REF, train, val, 1.0, null).run();
        assertTrue(s.plateaued() && s.stoppedEarly(), s.toString());
        long windows = new Batcher(train, 4, 12).windowsPerEpoch();
        assertTrue(s.steps() < epochs * windows, s.steps() + " steps");
        List<double[]> vals = new ArrayList<>(); // {step, loss} of every validation
        for (String line : Files.readAllLines(dir.resolve("metrics.jsonl"))) {
            com.fasterxml.jackson.databind.JsonNode n = new com.fasterxml.jackson.databind.ObjectMapper().readTree(line);
            if (n.has("val_loss")) {
                vals.add(new double[] {n.get("step").asDouble(), n.get("val_loss").asDouble()});
            }
        }
        int bestAt = 0;
        for (int i = 1; i < vals.size(); i++) {
            bestAt = vals.get(i)[1] < vals.get(bestAt)[1] ? i : bestAt;
        }
        assertEquals(patience, vals.size() - 1 - bestAt, "validations after the best one");
        assertEquals(s.steps(), (long) vals.get(vals.size() - 1)[0]);
        assertEquals(vals.get(bestAt)[1], Checkpoints.load(dir.resolve("best.safetensors"), CELLS, REF, dev.cellar.api.DType.F32)
                .progress().bestValLoss(), 0.0);
        // without patience the same run trains on past that point
        Trainer.Config all = new Trainer.Config(4, 12, 0.03, (int) (s.steps() / windows) + 2, 0, 0, 3, evalEvery, 0, null);
        Trainer.Summary full = new Trainer(all, Fixtures.model("lstm", tok, 16, 1), REF, train, val, 1.0, null).run();
        assertTrue(!full.plateaued() && full.steps() > s.steps(), full.toString());
    }

    /** N steps straight equals N/2, save, resume in fresh objects, N/2: byte-identical params, on both CPU backends. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"cpu-reference", "cpu"})
    void resumeContinuesExactly(String backend, @TempDir Path dir) {
        Backend REF = backend.equals("cpu") ? Fixtures.CPU : Fixtures.REF;
        String text = Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        int[][] split = Corpus.split(tok.encode(text), 0.9);
        for (String cell : List.of("lstm", "gru", "transformer")) {
            Path a = dir.resolve(cell + "-straight"), b = dir.resolve(cell + "-resumed");
            LanguageModel straight = Fixtures.model(cell, tok, 8, 5, REF);
            new Trainer(config(a, 2, 0), straight, REF, split[0], split[1], 1.0, null).run();

            LanguageModel half = Fixtures.model(cell, tok, 8, 5, REF);
            Trainer first = new Trainer(config(b, 2, 0), half, REF, split[0], split[1], 1.0, null);
            long total = 2L * new Batcher(split[0], 4, 12).windowsPerEpoch();
            long stopAt = total / 2 + 1; // mid-epoch, so carried state matters
            Trainer[] ref = {first};
            first = new Trainer(config(b, 2, 0), half, REF, split[0], split[1], 1.0, new TrainListener() {
                @Override
                public void onStep(long step, int epoch, double loss, double tps) {
                    if (step == stopAt) {
                        ref[0].requestStop();
                    }
                }
            });
            ref[0] = first;
            first.run();
            Checkpoints.Loaded ck = Checkpoints.load(b.resolve("last.safetensors"), CELLS, REF, dev.cellar.api.DType.F32);
            assertEquals(stopAt, ck.progress().step());
            Trainer second = new Trainer(config(b, 2, 0), ck.model(), REF, split[0], split[1], 1.0, null);
            second.resumeFrom(ck);
            second.run();
            for (int i = 0; i < straight.params().size(); i++) {
                assertArrayEquals(straight.params().get(i).toFloats(), ck.model().params().get(i).toFloats(),
                        cell + " " + straight.params().get(i).name());
            }
        }
    }

    /**
     * The same seed gives the same weights, bit for bit, on the vectorised cpu backend: the first training runs while
     * the JIT is still compiling the kernels, the second compiled. Wide enough (hidden 48, window 16) that the Vector
     * API loops, not only their scalar tails, do the work.
     */
    @Test
    void theSameSeedTrainsTheSameWeightsOnCpu() {
        String text = Fixtures.corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        int[][] split = Corpus.split(tok.encode(text), 0.9);
        Trainer.Config c = new Trainer.Config(4, 16, 0.01, 1, 0, 0, 3, 0, 0, null);
        for (String cell : List.of("rnn", "lstm", "gru", "transformer")) {
            List<float[]> first = null;
            for (int run = 0; run < 2; run++) {
                LanguageModel m = Fixtures.model(cell, tok, 48, 5, Fixtures.CPU);
                new Trainer(c, m, Fixtures.CPU, split[0], split[1], 1.0, null).run();
                List<float[]> w = m.params().stream().map(p -> p.toFloats()).toList();
                if (first == null) {
                    first = w;
                } else {
                    for (int i = 0; i < w.size(); i++) {
                        assertArrayEquals(first.get(i), w.get(i), cell + " " + m.params().get(i).name());
                    }
                }
            }
        }
    }
}
