package dev.cellar.text;

import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.autodiff.Params;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.SplittableRandom;

final class Fixtures {
    static final Backend REF = Backends.select(Backends.discover(Fixtures.class.getClassLoader()), "cpu-reference", null)
            .open(BackendConfig.defaults());
    /** The fast pure-Java backend: pooled, unzeroed buffers and cached GEMM packs must not change any result. */
    static final Backend CPU = Backends.select(Backends.discover(Fixtures.class.getClassLoader()), "cpu", null)
            .open(BackendConfig.defaults());
    static final Map<String, CellProvider> CELLS = new LinkedHashMap<>();

    static {
        ServiceLoader.load(CellProvider.class).forEach(p -> CELLS.put(p.id(), p));
    }

    /** A small repetitive corpus: easy to learn, so a few dozen steps must reduce the loss. */
    static String corpus() {
        StringBuilder sb = new StringBuilder();
        String[] lines = {"to be or not to be, that is the question.\n", "the rest is silence.\n", "all the world's a stage.\n"};
        for (int i = 0; i < 40; i++) {
            sb.append(lines[i % lines.length]);
        }
        return sb.toString();
    }

    static LanguageModel model(String cell, Tokenizer tok, int hidden, long seed) {
        return model(cell, tok, hidden, seed, REF);
    }

    static LanguageModel model(String cell, Tokenizer tok, int hidden, long seed, Backend backend) {
        return new LanguageModel(new ModelConfig(cell, 2, hidden, Map.of("heads", "2", "context", "16"), 0.0), tok, CELLS.get(cell),
                Params.creator(backend, DType.F32, new SplittableRandom(seed)));
    }

    private Fixtures() {
    }
}
