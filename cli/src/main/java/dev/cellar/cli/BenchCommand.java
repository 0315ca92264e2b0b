package dev.cellar.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.State;
import dev.cellar.autodiff.Optimizer;
import dev.cellar.autodiff.Optimizers;
import dev.cellar.autodiff.Params;
import dev.cellar.autodiff.Tape;
import dev.cellar.text.CharTokenizer;
import dev.cellar.text.LanguageModel;
import dev.cellar.text.ModelConfig;
import dev.cellar.text.Sampler;
import jakarta.inject.Inject;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

@Command(name = "bench", mixinStandardHelpOptions = true, showDefaultValues = true, sortOptions = false,
        description = {"Training tokens/s and generation ms/token of a model, with the protocol of the PyTorch reference",
                "(../shared/bench/torch/bench_lm.py): vocabulary 65, Adam, state carried, median over timed steps."})
final class BenchCommand implements Callable<Integer> {
    @Option(names = "--cell", defaultValue = "lstm")
    String cell;
    @Option(names = "--batch", defaultValue = "64")
    int batch;
    @Option(names = "--seq", defaultValue = "100")
    int seq;
    @Option(names = "--hidden", defaultValue = "256")
    int hidden;
    @Option(names = "--layers", defaultValue = "2")
    int layers;
    @Option(names = "--steps", defaultValue = "10", description = "timed training steps")
    int steps;
    @Option(names = "--warmup", defaultValue = "3", description = "untimed training steps first")
    int warmup;
    @Option(names = "--sample", defaultValue = "200", description = "tokens generated at batch 1 for ms/token; 0 = skip")
    int sample;
    @Option(names = "--threads", defaultValue = "0", description = "CPU threads; 0 = all cores")
    int threads;
    @Option(names = "--backend", description = "cpu, cpu-reference, opencl (default: best available)")
    String backend;
    @Option(names = "--device", paramLabel = "DEVICE", description = "OpenCL device: index or part of its name (see 'cellar doctor')")
    String device;
    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    private final Services services;
    private final Registry registry;
    private final Io io;

    @Inject
    BenchCommand(Services services, Registry registry, Io io) {
        this.services = services;
        this.registry = registry;
        this.io = io;
    }

    @Override
    public Integer call() throws Exception {
        if (batch <= 0 || seq <= 0 || hidden <= 0 || layers <= 0 || steps <= 0 || warmup < 0 || sample < 0 || threads < 0) {
            throw new UsageException("sizes and --steps must be positive; --warmup, --sample and --threads not negative");
        }
        registry.cell(cell);
        StringBuilder alphabet = new StringBuilder();
        for (int i = 0; i < 65; i++) {
            alphabet.appendCodePoint(32 + i);
        }
        CharTokenizer tok = CharTokenizer.fit(alphabet.toString());
        Map<String, String> opts = cell.equals("transformer") ? Map.of("context", Integer.toString(seq)) : Map.of();
        try (Backend be = services.open(backend, threads, device)) {
            LanguageModel m = new LanguageModel(new ModelConfig(cell, layers, hidden, opts, 0), tok, registry.cell(cell),
                    Params.creator(be, DType.F32, new SplittableRandom(1234)));
            Optimizer opt = Optimizers.adam(m.params(), 0.001);
            SplittableRandom r = new SplittableRandom(1);
            List<State> state = null;
            double[] times = new double[steps];
            for (int i = 0; i < warmup + steps; i++) {
                int[] ids = r.ints((long) batch * seq, 0, 65).toArray();
                int[] tg = r.ints((long) batch * seq, 0, 65).toArray();
                long t0 = System.nanoTime();
                try (Tape t = Tape.on(be)) {
                    LanguageModel.Output o = m.forward(t, t.ids(ids, Shape.of(batch, seq)), state == null ? m.initialState(t, batch) : state);
                    Tensor loss = t.crossEntropy(o.logits(), t.ids(tg, Shape.of(batch, seq)));
                    t.backward(loss);
                    opt.step();
                    opt.zeroGrad();
                    List<State> next = new ArrayList<>();
                    for (State s : o.state()) {
                        next.add(new State(s.tensors().stream().map(x -> (Tensor) t.keep(t.detach(x))).toList()));
                    }
                    state = next;
                }
                if (i >= warmup) {
                    times[i - warmup] = (System.nanoTime() - t0) / 1e9;
                }
                if (!json) {
                    io.err().printf("\rstep %d/%d", i + 1, warmup + steps);
                }
            }
            if (!json) {
                io.err().print("\r");
            }
            double[] sorted = times.clone();
            Arrays.sort(sorted);
            double median = sorted[sorted.length / 2];
            double tokS = batch * seq / median;
            double msPerToken = Double.NaN;
            if (sample > 0) {
                Sampler.generate(m, be, "T", new Sampler.Settings(Math.min(50, sample), 1, 0, 1, 1, 0), x -> { });
                long t0 = System.nanoTime();
                Sampler.generate(m, be, "T", new Sampler.Settings(sample, 1, 0, 1, 1, 0), x -> { });
                msPerToken = (System.nanoTime() - t0) / 1e6 / sample;
            }
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("cell", cell);
            o.put("backend", be.id());
            o.put("backend_description", be.description());
            o.put("params", m.parameterCount());
            o.put("batch", batch);
            o.put("seq", seq);
            o.put("hidden", hidden);
            o.put("layers", layers);
            o.put("steps", steps);
            o.put("step_s_median", median);
            o.put("step_s_min", sorted[0]);
            o.put("step_s_max", sorted[sorted.length - 1]);
            o.put("train_tok_s", tokS);
            o.put("sample_ms_per_token", msPerToken);
            if (json) {
                io.out().println(new ObjectMapper().writeValueAsString(o));
            } else {
                io.out().printf("%s %dx%d (%,d params) on %s: train %,.0f tok/s (median step %.1f ms over %d; min %.1f, max %.1f)",
                        cell, layers, hidden, m.parameterCount(), be.description(), tokS, median * 1e3, steps, sorted[0] * 1e3,
                        sorted[sorted.length - 1] * 1e3);
                io.out().println(sample > 0 ? String.format(", generate %.3f ms/token", msPerToken) : "");
            }
            return 0;
        }
    }
}
