package dev.cellar.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.cellar.api.CellarException;
import dev.cellar.text.Comparison;
import dev.cellar.text.Evaluator;
import dev.cellar.text.Tokenizer;
import dev.cellar.text.Trainer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** What {@code cellar compare} writes: results.md (table, definitions, samples), results.json and loss.png. */
final class CompareReport {
    static final String MARKDOWN = "results.md";
    static final String JSON = "results.json";
    static final String PLOT = "loss.png";

    private final Path data;
    private final Tokenizer tok;
    private final int trainTokens;
    private final int valTokens;
    private final double charsPerToken;
    private final double wordsPerToken;
    private final Comparison.Settings settings;
    private final String backend;
    private final double budget;
    private final List<Comparison.Entry> entries;

    CompareReport(Path data, Tokenizer tok, int trainTokens, int valTokens, Comparison cmp, Comparison.Settings settings,
                  String backend, double budget, List<Comparison.Entry> entries) {
        this.data = data;
        this.tok = tok;
        this.trainTokens = trainTokens;
        this.valTokens = valTokens;
        this.charsPerToken = cmp.charsPerToken();
        this.wordsPerToken = cmp.wordsPerToken();
        this.settings = settings;
        this.backend = backend;
        this.budget = budget;
        this.entries = entries;
    }

    void write(Path dir) {
        try {
            Files.writeString(dir.resolve(MARKDOWN), markdown(), StandardCharsets.UTF_8);
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(dir.resolve(JSON).toFile(), json());
        } catch (IOException e) {
            throw new CellarException("cannot write the results into " + dir + ": " + e.getMessage());
        }
        if (entries.stream().anyMatch(e -> !e.curve().isEmpty())) {
            Charts.lossCurves(dir.resolve(PLOT), entries);
        }
    }

    /** The markdown table (also what the command prints). */
    String table() {
        StringBuilder sb = new StringBuilder();
        sb.append("| cell | parameters | epochs | wall time | tok/s | val nats/token | bits/char | ppl/token | ppl/word "
                + "| best val nats/token (epoch) | best ppl/word |\n");
        sb.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Comparison.Entry e : entries) {
            Evaluator.Result v = e.validation();
            Comparison.Point best = best(e);
            sb.append(String.format("| %s | %,d | %.2f%s | %s | %,.0f | %s | %s | %s | %s | %s | %s |%n", e.cell(), e.parameters(), e.epochs(),
                    e.summary().plateaued() ? "*" : "", TrainCommand.clock(e.wallSeconds()), e.tokensPerSecond(), v == null ? "-" : String.format("%.4f", v.natsPerToken()),
                    v == null ? "-" : String.format("%.4f", v.bitsPerChar()), v == null ? "-" : String.format("%.3f", v.perplexity()),
                    v == null ? "-" : String.format("%.2f", e.perplexityPerWord()),
                    best == null ? "-" : String.format("%.4f (%.1f)", best.valLoss(), bestEpoch(e, best)),
                    best == null ? "-" : String.format("%.2f", Math.exp(best.valLoss() / wordsPerToken))));
        }
        return sb.toString();
    }

    /** The validation point with the lowest loss (the one best.safetensors holds), or null without validation. */
    static Comparison.Point best(Comparison.Entry e) {
        return e.curve().stream().min(java.util.Comparator.comparingDouble(Comparison.Point::valLoss)).orElse(null);
    }

    private static double bestEpoch(Comparison.Entry e, Comparison.Point best) {
        return e.summary().steps() == 0 ? 0 : best.step() * e.epochs() / e.summary().steps();
    }

    private String setup() {
        Trainer.Config c = settings.training();
        return String.format("layers %d, hidden %d, window (--seq) %d, batch %d, Adam lr %s, dropout %s, clip %s, seed %d, backend %s; "
                        + "each model trains for at most %d epochs%s%s; validation every %d steps and at the end",
                settings.layers(), settings.hidden(), c.seq(), c.batch(), c.lr(), settings.dropout(), c.clipNorm() == 0 ? "off" : c.clipNorm(),
                c.seed(), backend, c.epochs(), budget > 0 ? " or " + TrainCommand.clock(budget) + " of training time (its own budget)" : "",
                c.patience() > 0 ? String.format(", and stops early once %d validations in a row have not lowered its best"
                        + " validation loss", c.patience()) : "",
                c.evalEvery());
    }

    String markdown() {
        StringBuilder sb = new StringBuilder("# Cellar comparison\n\n");
        sb.append(String.format("Data `%s`, %s tokenizer (vocabulary %,d): the first %,d tokens train, the last %,d validate. "
                        + "Every model gets the same data, split, seed and settings: %s.%n%n", data, tok.kind(), tok.vocabSize(),
                trainTokens, valTokens, setup()));
        sb.append(table()).append('\n');
        sb.append("How the columns are measured:\n\n");
        definitions().forEach((k, v) -> sb.append("- **").append(k).append("**: ").append(v).append('\n'));
        sb.append("\n![validation loss against wall-clock time](").append(PLOT).append(")\n\n## Samples\n\n");
        sb.append(String.format("Prompt \"%s\", %d tokens, temperature %s, seed %d, from each model's final weights.%n",
                Comparison.PROMPT, settings.sampleLength(), settings.temperature(), settings.training().seed()));
        for (Comparison.Entry e : entries) {
            sb.append("\n### ").append(e.cell()).append("\n\n");
            if (e.sampleNote() != null) {
                sb.append("(").append(e.sampleNote()).append(")\n\n");
            }
            if (e.sample() != null) {
                String fence = "```";
                while (e.sample().contains(fence)) {
                    fence += "`";
                }
                sb.append(fence).append('\n').append(e.sample()).append('\n').append(fence).append('\n');
            }
        }
        return sb.toString();
    }

    private Map<String, String> definitions() {
        Map<String, String> d = new LinkedHashMap<>();
        d.put("epochs", "training steps / windows per epoch (a fraction when the time budget or early stopping stopped the model;"
                + " marked * when early stopping did)");
        d.put("wall time", "from the model's first training step to the end of its last validation, validation passes and checkpoints included");
        d.put("tok/s", "training tokens / time spent in training steps");
        d.put("val nats/token", "mean cross-entropy -ln p(next token) over the validation part, read in contiguous windows with the state "
                + "carried (as `cellar eval` does), after the last training step");
        d.put("bits/char", String.format("nats/token / ln 2 / characters per token (%.4f in the validation text)", charsPerToken));
        d.put("ppl/token", "exp(nats/token)");
        d.put("best val nats/token (epoch)", "the lowest validation loss of the curve and the epoch it was measured at; the "
                + "weights of that moment are the run's best.safetensors. Below the final loss when the model overfits");
        d.put("best ppl/word", "ppl/word of the best validation loss");
        d.put("ppl/word", String.format("exp(total nats / words) = exp(nats/token x tokens/word), words counted in the validation text "
                + "as the word tokenizer splits it: each run of letters or digits (with inner apostrophes), each punctuation mark, "
                + "each newline; %.4f tokens per word here%s", 1 / wordsPerToken, tok.kind().equals("word")
                ? ". For the word tokenizer this is ppl/token; words outside its vocabulary count as one <unk>, which makes it look "
                + "better than a char model's" : ""));
        return d;
    }

    Map<String, Object> json() {
        Map<String, Object> o = new LinkedHashMap<>();
        Trainer.Config c = settings.training();
        o.put("data", data.toString());
        o.put("tokenizer", tok.kind());
        o.put("vocab", tok.vocabSize());
        o.put("train_tokens", trainTokens);
        o.put("validation_tokens", valTokens);
        o.put("chars_per_token", charsPerToken);
        o.put("words_per_token", wordsPerToken);
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("layers", settings.layers());
        s.put("hidden", settings.hidden());
        s.put("seq", c.seq());
        s.put("batch", c.batch());
        s.put("lr", c.lr());
        s.put("dropout", settings.dropout());
        s.put("clip", c.clipNorm());
        s.put("epochs", c.epochs());
        s.put("time_budget_s_per_model", budget > 0 ? budget : null);
        s.put("eval_every", c.evalEvery());
        s.put("patience", c.patience());
        s.put("seed", c.seed());
        s.put("backend", backend);
        o.put("settings", s);
        o.put("prompt", Comparison.PROMPT);
        o.put("sample_length", settings.sampleLength());
        o.put("temperature", settings.temperature());
        o.put("definitions", definitions());
        List<Map<String, Object>> models = new ArrayList<>();
        for (Comparison.Entry e : entries) {
            Map<String, Object> m = new LinkedHashMap<>();
            Evaluator.Result v = e.validation();
            m.put("cell", e.cell());
            m.put("run_dir", e.runDir().toString());
            m.put("parameters", e.parameters());
            m.put("steps", e.summary().steps());
            m.put("epochs", e.epochs());
            m.put("stopped_early", e.summary().stoppedEarly());
            m.put("early_stopping", e.summary().plateaued());
            m.put("tokens", e.summary().tokens());
            m.put("train_seconds", e.summary().trainSeconds());
            m.put("wall_seconds", e.wallSeconds());
            m.put("tokens_per_second", e.tokensPerSecond());
            m.put("val_tokens", v == null ? null : v.tokens());
            m.put("val_nats_per_token", v == null ? null : v.natsPerToken());
            m.put("val_bits_per_char", v == null ? null : v.bitsPerChar());
            m.put("val_perplexity_per_token", v == null ? null : v.perplexity());
            m.put("val_perplexity_per_word", v == null ? null : e.perplexityPerWord());
            Comparison.Point best = best(e);
            m.put("best_val_nats_per_token", best == null ? null : best.valLoss());
            m.put("best_step", best == null ? null : best.step());
            m.put("best_epoch", best == null ? null : bestEpoch(e, best));
            m.put("best_val_perplexity_per_word", best == null ? null : Math.exp(best.valLoss() / wordsPerToken));
            m.put("sample", e.sample());
            m.put("sample_note", e.sampleNote());
            List<Map<String, Object>> curve = new ArrayList<>();
            for (Comparison.Point p : e.curve()) {
                Map<String, Object> pt = new LinkedHashMap<>();
                pt.put("step", p.step());
                pt.put("wall_s", p.wallSeconds());
                pt.put("train_s", p.trainSeconds());
                pt.put("val_loss", p.valLoss());
                curve.add(pt);
            }
            m.put("curve", curve);
            models.add(m);
        }
        o.put("models", models);
        return o;
    }
}
