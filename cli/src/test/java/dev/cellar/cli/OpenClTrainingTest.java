package dev.cellar.cli;

import dev.cellar.api.DType;
import dev.cellar.api.spi.Availability;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.BackendProvider;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.autodiff.Params;
import dev.cellar.text.CharTokenizer;
import dev.cellar.text.Checkpoints;
import dev.cellar.text.Corpus;
import dev.cellar.text.LanguageModel;
import dev.cellar.text.ModelConfig;
import dev.cellar.text.TrainListener;
import dev.cellar.text.Tokenizer;
import dev.cellar.text.Trainer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * End to end on the opencl backend: 20 training steps from one seed give the cpu backend's losses within 1e-3
 * relative, and a checkpoint written on either backend loads on the other with the same parameters. Skipped without
 * an OpenCL platform, failed instead under {@code -Dcellar.requireOpenCL=true} (as CI runs it).
 */
class OpenClTrainingTest {
    private static final int STEPS = 20;
    private static final Map<String, CellProvider> CELLS = new LinkedHashMap<>();
    private static Backend cpu;
    private static Backend opencl;

    @BeforeAll
    static void open() {
        ServiceLoader.load(CellProvider.class).forEach(p -> CELLS.put(p.id(), p));
        Map<String, BackendProvider> all = Backends.discover(OpenClTrainingTest.class.getClassLoader());
        BackendProvider cl = all.get("opencl");
        Availability a = Backends.safeProbe(cl);
        if (!a.ok()) {
            if ("true".equalsIgnoreCase(System.getProperty("cellar.requireOpenCL"))) {
                fail("cellar.requireOpenCL=true but the opencl backend is unavailable: " + a.reason());
            }
            assumeTrue(false, "skipped: no usable OpenCL platform here: " + a.reason());
        }
        opencl = cl.open(BackendConfig.defaults());
        cpu = Backends.select(all, "cpu", null).open(BackendConfig.defaults());
    }

    @AfterAll
    static void close() {
        if (opencl != null) {
            opencl.close();
        }
        if (cpu != null) {
            cpu.close();
        }
    }

    private static String corpus() {
        StringBuilder sb = new StringBuilder();
        String[] lines = {"to be or not to be, that is the question.\n", "the rest is silence.\n",
                "all the world's a stage.\n"};
        for (int i = 0; i < 60; i++) {
            sb.append(lines[i % lines.length]);
        }
        return sb.toString();
    }

    private record Run(List<Double> losses, LanguageModel model, Path checkpoint) {
    }

    private static Run train(String cell, Backend backend, Tokenizer tok, int[][] split, Path out) {
        LanguageModel m = new LanguageModel(new ModelConfig(cell, 2, 32, Map.of("heads", "2", "context", "16"), 0.0),
                tok, CELLS.get(cell), Params.creator(backend, DType.F32, new SplittableRandom(7)));
        List<Double> losses = new ArrayList<>();
        Trainer[] self = new Trainer[1];
        self[0] = new Trainer(new Trainer.Config(8, 16, 0.003, 50, 1.0, 0, 3, 0, 0, out), m, backend,
                split[0], split[1], 1.0, new TrainListener() {
                    @Override
                    public void onStep(long step, int epoch, double loss, double tps) {
                        losses.add(loss);
                        if (step == STEPS) {
                            self[0].requestStop();
                        }
                    }
                });
        self[0].run();
        return new Run(losses, m, out.resolve("last.safetensors"));
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"lstm", "gru", "transformer"})
    void twentyStepsMatchTheCpuBackendAndCheckpointsCrossOver(String cell, @TempDir Path dir) {
        String text = corpus();
        Tokenizer tok = CharTokenizer.fit(text);
        int[][] split = Corpus.split(tok.encode(text), 0.9);
        Run onCpu = train(cell, cpu, tok, split, dir.resolve("cpu"));
        Run onCl = train(cell, opencl, tok, split, dir.resolve("opencl"));

        assertEquals(STEPS, onCpu.losses().size());
        assertEquals(STEPS, onCl.losses().size());
        assertTrue(onCpu.losses().get(STEPS - 1) < onCpu.losses().get(0), "the loss falls: " + onCpu.losses());
        for (int i = 0; i < STEPS; i++) {
            double a = onCpu.losses().get(i), b = onCl.losses().get(i);
            assertTrue(Math.abs(a - b) <= 1e-3 * Math.abs(a),
                    cell + " step " + (i + 1) + ": cpu loss " + a + ", opencl loss " + b);
        }

        // written on opencl, read on cpu (and the other way round): the very same parameters
        assertSameParams(onCl.model(), Checkpoints.load(onCl.checkpoint(), CELLS, cpu, DType.F32).model());
        assertSameParams(onCpu.model(), Checkpoints.load(onCpu.checkpoint(), CELLS, opencl, DType.F32).model());
    }

    private static void assertSameParams(LanguageModel written, LanguageModel read) {
        assertEquals(written.params().size(), read.params().size());
        for (int i = 0; i < written.params().size(); i++) {
            float[] w = written.params().get(i).toFloats(), r = read.params().get(i).toFloats();
            assertEquals(w.length, r.length);
            for (int j = 0; j < w.length; j++) {
                assertEquals(w[j], r[j], "param " + written.params().get(i).name() + "[" + j + "]");
            }
        }
    }
}
