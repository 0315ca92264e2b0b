package dev.cellar.text;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.ParamInit;
import dev.cellar.autodiff.Params;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Model checkpoints as one safetensors file: params (F32) and optimizer moments ({@code optim.<param>.<m|v>}, F64)
 * as tensors; model config, tokenizer, cell id and version, and training progress as JSON strings in
 * {@code __metadata__}. Portable across backends.
 */
public final class Checkpoints {
    public static final String FORMAT = "cellar-checkpoint-1";
    private static final ObjectMapper JSON = new ObjectMapper();

    private Checkpoints() {
    }

    /** Where training stands: enough to continue exactly. */
    public record Progress(long step, int epoch, int batchPosition, long tokens, double trainSeconds, long seed,
                           double bestValLoss, Map<String, String> train) {
        public static Progress start(long seed) {
            return new Progress(0, 0, 0, 0, 0, seed, Double.POSITIVE_INFINITY, Map.of());
        }
    }

    /** A loaded checkpoint. {@code optimizer} is empty for weights-only files. */
    public record Loaded(LanguageModel model, Map<String, double[]> optimizer, Progress progress, Map<String, String> metadata) {
    }

    public static void save(Path path, LanguageModel model, Map<String, double[]> optimizer, Progress progress) {
        Map<String, String> meta = new LinkedHashMap<>();
        ModelConfig c = model.config();
        try {
            meta.put("format", FORMAT);
            Map<String, Object> cfg = new LinkedHashMap<>();
            cfg.put("cell", c.cell());
            cfg.put("layers", c.layers());
            cfg.put("hidden", c.hidden());
            cfg.put("options", c.cellOptions());
            cfg.put("dropout", c.dropout());
            meta.put("config", JSON.writeValueAsString(cfg));
            meta.put("tokenizer", JSON.writeValueAsString(model.tokenizer().toMetadata()));
            meta.put("cells", JSON.writeValueAsString(Map.of(c.cell(), model.provider().spec().version())));
            Map<String, Object> p = new LinkedHashMap<>();
            p.put("step", progress.step());
            p.put("epoch", progress.epoch());
            p.put("batch_position", progress.batchPosition());
            p.put("tokens", progress.tokens());
            p.put("train_seconds", progress.trainSeconds());
            p.put("seed", progress.seed());
            p.put("best_val_loss", Double.isFinite(progress.bestValLoss()) ? progress.bestValLoss() : null);
            p.put("train", progress.train());
            meta.put("progress", JSON.writeValueAsString(p));
        } catch (JsonProcessingException e) {
            throw new CheckpointException("cannot encode checkpoint metadata: " + e.getOriginalMessage());
        }
        List<SafeTensors.Entry> entries = new ArrayList<>();
        for (Param prm : model.params()) {
            entries.add(SafeTensors.Entry.of(prm.name(), prm.shape(), prm.toFloats()));
        }
        if (optimizer != null) {
            optimizer.forEach((k, v) -> entries.add(SafeTensors.Entry.of("optim." + k, Shape.of(v.length), v)));
        }
        try {
            SafeTensors.write(path, meta, entries);
        } catch (IOException e) {
            throw new CellarException(path + ": cannot write checkpoint (" + e.getMessage() + ")");
        }
    }

    /** Reads and validates a checkpoint and rebuilds the model on {@code backend} in {@code dtype}. */
    public static Loaded load(Path path, Map<String, CellProvider> cells, Backend backend, DType dtype) {
        return fromContents(path.toString(), SafeTensors.read(path), cells, backend, dtype);
    }

    public static Loaded load(String name, byte[] file, Map<String, CellProvider> cells, Backend backend, DType dtype) {
        return fromContents(name, SafeTensors.parse(name, file), cells, backend, dtype);
    }

    private static Loaded fromContents(String name, SafeTensors.Contents c, Map<String, CellProvider> cells, Backend backend, DType dtype) {
        String bad = name + ": ";
        Map<String, String> meta = c.metadata();
        if (!FORMAT.equals(meta.get("format"))) {
            throw new CheckpointException(bad + "not a Cellar checkpoint (metadata format is " + meta.get("format") + ", expected " + FORMAT + ")");
        }
        try {
            Map<String, Object> cfg = json(meta, "config", name);
            Object cell = cfg.get("cell");
            CellProvider provider = cells.get(String.valueOf(cell));
            if (provider == null) {
                throw new CheckpointException(bad + "unknown cell '" + cell + "'; installed cells: " + String.join(", ", cells.keySet())
                        + " (add its plugin with --plugins)");
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> opts = cfg.get("options") instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
            Map<String, String> options = new LinkedHashMap<>();
            opts.forEach((k, v) -> options.put(k, String.valueOf(v)));
            ModelConfig config = new ModelConfig(String.valueOf(cell), integer(cfg, "layers", name), integer(cfg, "hidden", name),
                    options, number(cfg, "dropout", name));
            Tokenizer tok = Tokenizers.fromMetadata(json(meta, "tokenizer", name));
            // every param the model asks for must be in the file with the same shape, checked before allocating it
            ParamInit creator = Params.creator(backend, dtype, new SplittableRandom(0));
            ParamInit checked = (pname, shape, init) -> {
                SafeTensors.Entry e = c.tensors().get(pname);
                if (e == null) {
                    throw new CheckpointException(bad + "param '" + pname + "' " + shape + " is missing");
                }
                if (!e.shape().equals(shape)) {
                    throw new CheckpointException(bad + "param '" + pname + "' has shape " + e.shape() + ", the model needs " + shape);
                }
                return creator.param(pname, shape, init);
            };
            LanguageModel model = new LanguageModel(config, tok, provider, checked);
            for (Param p : model.params()) { // after construction: cells may adjust their initial values
                p.load(c.tensors().get(p.name()).doubles());
            }
            Map<String, double[]> optim = new LinkedHashMap<>();
            c.tensors().forEach((k, e) -> {
                if (k.startsWith("optim.")) {
                    optim.put(k.substring(6), e.doubles());
                }
            });
            return new Loaded(model, optim, progress(meta, name), meta);
        } catch (CheckpointException e) {
            throw e;
        } catch (CellarException | ClassCastException | IllegalArgumentException | IndexOutOfBoundsException e) {
            throw new CheckpointException(bad + "invalid checkpoint: " + e.getMessage());
        }
    }

    private static Progress progress(Map<String, String> meta, String name) {
        if (!meta.containsKey("progress")) {
            return Progress.start(0);
        }
        Map<String, Object> p = json(meta, "progress", name);
        @SuppressWarnings("unchecked")
        Map<String, Object> train = p.get("train") instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
        Map<String, String> t = new LinkedHashMap<>();
        train.forEach((k, v) -> t.put(k, String.valueOf(v)));
        Object best = p.get("best_val_loss");
        return new Progress(lng(p, "step", name), integer(p, "epoch", name), integer(p, "batch_position", name),
                lng(p, "tokens", name), number(p, "train_seconds", name), lng(p, "seed", name),
                best instanceof Number n ? n.doubleValue() : Double.POSITIVE_INFINITY, t);
    }

    private static Map<String, Object> json(Map<String, String> meta, String key, String name) {
        String s = meta.get(key);
        if (s == null) {
            throw new CheckpointException(name + ": checkpoint metadata has no '" + key + "'");
        }
        try {
            return JSON.readValue(s, new TypeReference<Map<String, Object>>() {
            });
        } catch (JsonProcessingException | RuntimeException e) {
            throw new CheckpointException(name + ": checkpoint metadata '" + key + "' is not a JSON object");
        }
    }

    private static int integer(Map<String, Object> m, String k, String name) {
        if (m.get(k) instanceof Integer i) {
            return i;
        }
        throw new CheckpointException(name + ": checkpoint field '" + k + "' is not a whole number: " + m.get(k));
    }

    private static long lng(Map<String, Object> m, String k, String name) {
        if (m.get(k) instanceof Integer || m.get(k) instanceof Long) {
            return ((Number) m.get(k)).longValue();
        }
        throw new CheckpointException(name + ": checkpoint field '" + k + "' is not a whole number: " + m.get(k));
    }

    private static double number(Map<String, Object> m, String k, String name) {
        if (m.get(k) instanceof Number n) {
            return n.doubleValue();
        }
        throw new CheckpointException(name + ": checkpoint field '" + k + "' is not a number: " + m.get(k));
    }
}
