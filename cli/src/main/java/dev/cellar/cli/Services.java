package dev.cellar.cli;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.BackendProvider;
import dev.cellar.api.spi.Backends;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.text.Checkpoints;
import dev.cellar.text.Corpus;
import dev.cellar.text.Tokenizer;
import jakarta.inject.Inject;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/** What the commands share: the injected providers, backend selection and model loading. */
final class Services {
    static final String BUNDLED = "/dev/cellar/cli/model/shakespeare-lstm.safetensors";
    private final Map<String, CellProvider> cells;
    private final Map<String, BackendProvider> backends;

    @Inject
    Services(Map<String, CellProvider> cells, Map<String, BackendProvider> backends) {
        this.cells = cells;
        this.backends = backends;
    }

    Map<String, CellProvider> cells() {
        return cells;
    }

    Map<String, BackendProvider> backends() {
        return backends;
    }

    /** --backend flag, then CELLAR_BACKEND, then the best available. */
    BackendProvider select(String requested) {
        return select(requested, System.getenv(Backends.ENV));
    }

    /** {@link #select(String)} with the environment variable's value passed in (tests cannot set it). */
    BackendProvider select(String requested, String env) {
        try {
            return Backends.select(backends, requested, env);
        } catch (CellarException e) {
            throw requested != null || env != null ? new UsageException(e.getMessage()) : e;
        }
    }

    Backend open(String requested, int threads) {
        return open(requested, threads, null);
    }

    /** Opens the selected backend on {@code device} (index or name substring; null for its default device). */
    Backend open(String requested, int threads, String device) {
        BackendProvider p = select(requested);
        if (device != null) {
            java.util.List<String> devices = p.devices();
            if (devices.isEmpty()) {
                throw new UsageException("--device " + device + " needs a backend with devices (--backend opencl); "
                        + p.id() + " has none");
            }
            try {
                return p.open(new BackendConfig(threads, device, Map.of()));
            } catch (CellarException e) {
                if (e.getMessage() != null && e.getMessage().contains("--device")) {
                    throw new UsageException(e.getMessage()); // no device matches: a usage error
                }
                throw e;
            }
        }
        return p.open(new BackendConfig(threads, device, Map.of()));
    }

    /** The text of the file given with {@code flag}: UTF-8, not empty, not binary; errors name the flag. */
    static String readText(String flag, Path path) {
        try {
            return Corpus.read(path);
        } catch (CellarException e) {
            throw new CellarException(flag + " " + e.getMessage(), e);
        }
    }

    /** The token ids of the file given with {@code flag}; a symbol outside the vocabulary is an error naming the flag. */
    static int[] encode(String flag, Path path, Tokenizer tok, String text) {
        try {
            return tok.encode(text);
        } catch (CellarException e) {
            throw new CellarException(flag + " " + path + ": " + e.getMessage(), e);
        }
    }

    /**
     * A checkpoint from a path (a file, or a run directory: best.safetensors, else last.safetensors), or the bundled
     * Shakespeare model when {@code path} is null. A missing or unusable file is an error naming --model.
     */
    Checkpoints.Loaded loadModel(Path path, Backend backend) {
        if (path != null) {
            Path file = path;
            if (Files.isDirectory(path)) {
                file = path.resolve("best.safetensors");
                if (!Files.exists(file)) {
                    file = path.resolve("last.safetensors");
                }
                if (!Files.exists(file)) {
                    throw new CellarException("--model " + path + ": no best.safetensors or last.safetensors in this directory; "
                            + "pass a checkpoint file or a run directory written by cellar train");
                }
            }
            if (!Files.exists(file)) {
                throw new CellarException("--model " + path + ": file not found; pass a checkpoint file or a run directory");
            }
            try {
                return Checkpoints.load(file, cells, backend, DType.F32);
            } catch (CellarException e) {
                throw new CellarException("--model " + e.getMessage(), e);
            }
        }
        try (InputStream in = Services.class.getResourceAsStream(BUNDLED)) {
            if (in == null) {
                throw new CellarException("this build has no bundled model; pass --model PATH (a checkpoint from cellar train)");
            }
            return Checkpoints.load("bundled model", in.readAllBytes(), cells, backend, DType.F32);
        } catch (IOException e) {
            throw new CellarException("cannot read the bundled model: " + e.getMessage());
        }
    }
}
