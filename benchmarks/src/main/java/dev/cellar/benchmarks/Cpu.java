package dev.cellar.benchmarks;

import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.Storage;
import dev.cellar.autodiff.Params;
import dev.cellar.text.CharTokenizer;
import dev.cellar.text.LanguageModel;
import dev.cellar.text.ModelConfig;

import java.util.Map;
import java.util.ServiceLoader;
import java.util.SplittableRandom;

/**
 * What every benchmark shares: the {@code cpu} backend, F32 buffers of Gaussian noise, and the language model
 * {@code cellar bench} measures.
 */
final class Cpu {
    /** For the forks' {@code jvmArgsAppend}: without it {@code cpu} falls back to scalar loops. */
    static final String ADD_VECTOR = "--add-modules=jdk.incubator.vector";

    private Cpu() {
    }

    /** Opens {@code cpu} whatever {@code CELLAR_BACKEND} says; threads 0 = all cores. Prints what it opened. */
    static Backend open(int threads) {
        Backend be = Backends.open("cpu", new BackendConfig(threads, null, Map.of()));
        System.out.println("backend: " + be.description());
        return be;
    }

    /** The model's vocabulary: {@code cellar bench}'s 65, as character-level Shakespeare. */
    static final int VOCAB = 65;

    /** The cell provider {@code id}; an unknown one is an IllegalArgumentException that names the known ones. */
    static CellProvider cell(String id) {
        return ServiceLoader.load(CellProvider.class).stream().map(ServiceLoader.Provider::get)
                .filter(p -> p.id().equals(id)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("cell " + id + ": not found; try lstm, gru, rnn or transformer"));
    }

    /**
     * {@code cellar bench}'s language model: an embedding, {@code layers} x {@code hidden} of {@code cell} (a
     * transformer's context {@code seq}) and a linear to {@link #VOCAB} symbols, F32, weights seeded as bench seeds them.
     */
    static LanguageModel languageModel(Backend be, CellProvider cell, int layers, int hidden, int seq) {
        StringBuilder alphabet = new StringBuilder();
        for (int i = 0; i < VOCAB; i++) {
            alphabet.appendCodePoint(32 + i);
        }
        Map<String, String> opts = cell.id().equals("transformer") ? Map.of("context", Integer.toString(seq)) : Map.of();
        return new LanguageModel(new ModelConfig(cell.id(), layers, hidden, opts, 0), CharTokenizer.fit(alphabet.toString()),
                cell, Params.creator(be, DType.F32, new SplittableRandom(1234)));
    }

    static Storage gaussian(Kernels k, int n, SplittableRandom r) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian();
        }
        Storage s = k.allocate(DType.F32, n);
        k.write(s, v);
        return s;
    }
}
