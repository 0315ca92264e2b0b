package dev.cellar.cli;

import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.autodiff.Params;
import dev.cellar.text.CharTokenizer;
import dev.cellar.text.Checkpoints;
import dev.cellar.text.Corpus;
import dev.cellar.text.LanguageModel;
import dev.cellar.text.ModelConfig;
import dev.cellar.text.TrainListener;
import dev.cellar.text.Trainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Ctrl-C path (the shutdown hook's body, without a real signal) and the progress reporter. */
class TrainProgressTest {
    @TempDir
    Path dir;

    @Test
    void stopHookEndsTrainingAtTheNextStepWithACheckpoint() throws Exception {
        Registry registry = Registry.discover(null);
        String text = Cli.corpus(3000);
        CharTokenizer tok = CharTokenizer.fit(text);
        int[][] split = Corpus.split(tok.encode(text), 0.9);
        try (Backend be = registry.backends().get("cpu-reference").provider().open(BackendConfig.defaults())) {
            LanguageModel model = new LanguageModel(new ModelConfig("lstm", 1, 8, Map.of(), 0), tok, registry.cell("lstm"),
                    Params.creator(be, DType.F32, new SplittableRandom(1)));
            Trainer.Config cfg = new Trainer.Config(4, 8, 0.01, 1, 0, 0, 1, 0, 0, dir);
            CountDownLatch saved = new CountDownLatch(1);
            Thread[] hook = new Thread[1];
            TrainListener ctrlC = new TrainListener() {
                @Override
                public void onStep(long step, int epoch, double loss, double tps) {
                    if (step == 3) { // what the JVM does on SIGINT: start the hook, which waits for the checkpoint
                        hook[0].start();
                        while (hook[0].getState() != Thread.State.TIMED_WAITING) {
                            Thread.onSpinWait();
                        }
                    }
                }
            };
            Trainer trainer = new Trainer(cfg, model, be, split[0], split[1], 1, ctrlC);
            hook[0] = TrainCommand.stopHook(trainer, saved);
            Trainer.Summary s = trainer.run();
            assertTrue(hook[0].isAlive(), "the hook keeps the JVM up until the command is done");
            saved.countDown();
            hook[0].join(10_000);
            assertFalse(hook[0].isAlive());
            assertTrue(s.stoppedEarly());
            assertEquals(3, s.steps());
            Checkpoints.Loaded ck = Checkpoints.load(dir.resolve("last.safetensors"), registry.cellProviders(), be, DType.F32);
            assertEquals(3, ck.progress().step());
        }
    }

    @Test
    void etaIsTheRemainingStepsCappedByTheTimeBudget() {
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream());
        TrainCommand.Progress budget = new TrainCommand.Progress(new Io(quiet, quiet), 50, 100, 30);
        budget.onStart(1_000_000, 20_000, 1000, 0);
        assertEquals(30.0, budget.eta().orElseThrow());
        budget.onStep(1, 0, 2.0, 100); // 100 tokens at 100 tok/s: one second of training
        assertEquals(29.0, budget.eta().orElseThrow(), 1e-9);

        TrainCommand.Progress steps = new TrainCommand.Progress(new Io(quiet, quiet), 50, 100, 0);
        steps.onStart(100, 2, 1000, 0);
        assertTrue(steps.eta().isEmpty(), "unknown before the first step");
        steps.onStep(1, 0, 2.0, 50); // two seconds a step
        assertEquals(198.0, steps.eta().orElseThrow(), 1e-9);
    }

    @Test
    void plainLinesWhenStderrIsNotATerminal() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try (TrainCommand.Progress p = new TrainCommand.Progress(new Io(System.out, new PrintStream(err, true, StandardCharsets.UTF_8)),
                2, 1000, 0)) {
            p.onStart(40, 20, 1000, 0);
            for (int i = 1; i <= 40; i++) {
                p.onStep(i, (i - 1) / 20, 2.5, 23_456);
                if (i == 20) {
                    p.onEval(i, new dev.cellar.text.Evaluator.Result(2.25, 3.2, 9.5, 1000));
                }
            }
        }
        String[] lines = err.toString(StandardCharsets.UTF_8).split("\n");
        assertEquals(22, lines.length, "the first step, every 5% of 40 steps after it, the last, and one validation");
        assertTrue(lines[0].startsWith("step 1/40 epoch 1/2 loss 2.500 23.5k tok/s, ETA "), lines[0]);
        assertEquals("step 20 validation 2.2500 nats/token, 3.2000 bits/char, perplexity 9.500", lines[10]);
        assertEquals("step 40/40 epoch 2/2 loss 2.500 val 2.250 23.5k tok/s, ETA 0m00s", lines[21]);
    }

    @Test
    void compactSpeeds() {
        assertEquals("950", TrainCommand.Progress.compact(950));
        assertEquals("9999", TrainCommand.Progress.compact(9999));
        assertEquals("22.7k", TrainCommand.Progress.compact(22_668));
        assertEquals("1.2M", TrainCommand.Progress.compact(1_234_567));
    }
}
